"""The exact pins of a project's run-time dependencies, read from the lock file it already has.

The lab installs wheels from a requirements file of `name==version` lines; this reads `poetry.lock` (main
group), `uv.lock` (what the project itself depends on, without development groups) or a pinned
`requirements.txt`, and names the first entry it cannot pin.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from djdeploy.errors import DjdeployError


class LockFileError(DjdeployError):
    pass


class LockKind(StrEnum):
    POETRY = "poetry.lock"
    UV = "uv.lock"
    REQUIREMENTS = "requirements.txt"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @property
    def line(self) -> str:
        return f"{self.name}=={self.version}"


def normalized(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find(project: Path) -> Path:
    """The project's lock file: poetry.lock, then uv.lock, then requirements.txt."""
    for kind in LockKind:
        candidate = project / kind.value
        if candidate.is_file():
            return candidate
    raise LockFileError(
        f"{project} has no poetry.lock, uv.lock or requirements.txt. The lab installs exactly pinned "
        "dependencies: run `poetry lock` or `uv lock` in the project, or write a requirements.txt of "
        "`name==version` lines, or name another file with `requirements:` in lab.yaml."
    )


def read(path: Path) -> tuple[Pin, ...]:
    """The pins of a lock file, sorted by name."""
    if not path.is_file():
        raise LockFileError(f"The lock file {path} does not exist. Check `requirements:` in lab.yaml.")
    if path.name == LockKind.POETRY:
        pins = _poetry(path)
    elif path.name == LockKind.UV:
        pins = _uv(path)
    else:
        pins = _requirements(path)
    return tuple(sorted(pins, key=lambda pin: pin.name))


def requirements_text(pins: Iterable[Pin]) -> str:
    return "".join(pin.line + "\n" for pin in pins)


def _toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"{path} is not valid TOML ({exc}); run the lock command again.") from exc


def _packages(path: Path) -> list[Mapping[str, object]]:
    packages = _toml(path).get("package", [])
    if not isinstance(packages, list):
        raise LockFileError(f"{path} has no [[package]] entries; run the lock command again.")
    return [package for package in packages if isinstance(package, dict)]


def _unsupported_source(path: Path, name: str, source: object) -> LockFileError:
    return LockFileError(
        f"{path}: {name} comes from {source}, not from a package index. The lab installs wheels from an "
        f"index only: publish {name} to an index, or depend on a released version of it."
    )


def _poetry(path: Path) -> list[Pin]:
    pins = []
    for package in _packages(path):
        name = str(package.get("name", ""))
        # Poetry 2 lists the groups a package belongs to; Poetry 1 writes one category.
        groups = package.get("groups")
        category = package.get("category", "main")
        in_main = "main" in groups if isinstance(groups, list) else category == "main"
        if not in_main or package.get("optional") is True:
            continue
        source = package.get("source")
        if isinstance(source, dict) and source.get("type") not in (None, "legacy"):
            raise _unsupported_source(path, name, f"a {source.get('type')} source ({source.get('url')})")
        pins.append(Pin(normalized(name), str(package["version"])))
    return pins


def _uv(path: Path) -> list[Pin]:
    packages = {normalized(str(package.get("name", ""))): package for package in _packages(path)}
    roots = [name for name, package in packages.items() if _is_project(package)]
    if not roots:
        raise LockFileError(f"{path} has no editable or virtual project entry: run `uv lock` in the project.")
    # The project's run-time closure: its dependencies, theirs, and so on (development groups left out).
    wanted: list[str] = []
    pending = [dependency for root in roots for dependency in _uv_dependencies(packages[root])]
    while pending:
        name = pending.pop()
        if name in wanted or name in roots:
            continue
        wanted.append(name)
        if name not in packages:
            raise LockFileError(
                f"{path} names {name} as a dependency but has no entry for it: run `uv lock`."
            )
        pending.extend(_uv_dependencies(packages[name]))
    pins = []
    for name in wanted:
        package = packages[name]
        source = package.get("source")
        if not (isinstance(source, dict) and "registry" in source):
            raise _unsupported_source(path, name, source)
        pins.append(Pin(name, str(package["version"])))
    return pins


def _is_project(package: Mapping[str, object]) -> bool:
    """The project itself: uv locks it as an editable or virtual source, not from an index."""
    source = package.get("source")
    return isinstance(source, dict) and bool({"editable", "virtual"} & set(source))


def _uv_dependencies(package: Mapping[str, object]) -> list[str]:
    dependencies = package.get("dependencies", [])
    if not isinstance(dependencies, list):
        return []
    return [normalized(str(entry["name"])) for entry in dependencies if isinstance(entry, dict)]


# name[extras]==version, then an optional environment marker and hashes.
_PINNED = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!_-]+)\s*(;.*)?")


def _requirements(path: Path) -> list[Pin]:
    pins = []
    logical = path.read_text().replace("\\\n", " ").splitlines()
    for number, raw in enumerate(logical, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = re.split(r"\s+--hash", line, maxsplit=1)[0].strip()
        match = _PINNED.fullmatch(requirement)
        if match is None:
            raise LockFileError(
                f"{path}:{number}: '{requirement}' is not pinned to one version. The lab installs exact pins "
                "only, so that every build installs the same files: write it as `name==version` (for example "
                "with `pip freeze` or `pip-compile`), or point `requirements:` in lab.yaml at poetry.lock "
                "or uv.lock."
            )
        pins.append(Pin(normalized(match.group(1)), match.group(3)))
    return pins
