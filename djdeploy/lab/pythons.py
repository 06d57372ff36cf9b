"""Which Python a project's lab hosts run, chosen from what the project asks for.

The lab offers the Pythons of the Debian releases its images are made of (djdeploy/lab/image.py): 3.11 on
Debian 12, the default, and 3.13 on Debian 13, the python3 of current NixOS (nixpkgs'
pkgs/development/interpreters/python/default.nix defines python311 to python315). No Debian release
packages 3.12 and the lab reaches no other source of interpreters, so a project that needs exactly 3.12 is
refused, told what it may use.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from djdeploy.errors import DjdeployError
from djdeploy.lab.image import DEBIAN_12, RECIPES, ImageRecipe

OFFERED = tuple(recipe.python_version for recipe in RECIPES)
# Patch releases tried against a requirement such as `>3.13` or `<3.13.4`: a Python of the lab is one
# minor series, and the project accepts it when some release of that series satisfies its requirement.
_PATCH_RELEASES = range(30)
_MINOR = re.compile(r"(\d+)\.(\d+)")


class PythonUnavailableError(DjdeployError):
    pass


@dataclass(frozen=True)
class PythonRequest:
    """What a project asks for as a PEP 440 requirement, and as it wrote it, where (for the error)."""

    requirement: str
    source: str
    written: str


def request_of(directory: Path, setting: str | None = None) -> PythonRequest | None:
    """The project's request: lab.yaml's `python:`, else .python-version, else pyproject.toml's."""
    if setting is not None:
        return PythonRequest(_exact_minor(setting, "lab.yaml's python"), "lab.yaml's python", setting)
    version_file = directory / ".python-version"
    if version_file.is_file():
        lines = [line.strip() for line in version_file.read_text().splitlines()]
        first = next((line for line in lines if line and not line.startswith("#")), "")
        return PythonRequest(_exact_minor(first, str(version_file)), str(version_file), first)
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PythonUnavailableError(f"{pyproject} is not valid TOML ({exc}); correct it.") from exc
    requires = data.get("project", {}).get("requires-python")
    if isinstance(requires, str):
        return PythonRequest(requires, f"requires-python in {pyproject}", requires)
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    if isinstance(poetry, str):
        source = f"tool.poetry.dependencies.python in {pyproject}"
        return PythonRequest(_from_poetry(poetry), source, poetry)
    return None


def choose(request: PythonRequest | None) -> ImageRecipe:
    """The image whose Python satisfies the request: Debian 12's when it does, else the first that does."""
    if request is None:
        return DEBIAN_12
    try:
        wanted = SpecifierSet(request.requirement)
    except InvalidSpecifier as exc:
        raise PythonUnavailableError(
            f"The Python that {request.source} asks for, '{request.written}', is not a version "
            "requirement such as '>=3.12' or '==3.13.*'; correct it."
        ) from exc
    for recipe in RECIPES:
        releases = (f"{recipe.python_version}.{patch}" for patch in _PATCH_RELEASES)
        if any(wanted.contains(release) for release in releases):
            return recipe
    offered = ", ".join(f"{recipe.python_version} ({recipe.release})" for recipe in RECIPES)
    raise PythonUnavailableError(
        f"The project asks for Python {request.written} ({request.source}), but the lab's hosts "
        f"offer only Python {offered}; no Debian release packages another. Allow one of these in the "
        "project (for example requires-python = '>=3.12' takes 3.13), or set `python:` in lab.yaml to one."
    )


def _exact_minor(text: str, source: str) -> str:
    """'3.13', '3.13.1' or 'cpython-3.13' as the requirement '==3.13.*'."""
    found = _MINOR.search(text)
    if found is None:
        raise PythonUnavailableError(
            f"{source} says '{text}', which names no Python version; write one such as 3.13."
        )
    return f"=={found.group(1)}.{found.group(2)}.*"


def _from_poetry(constraint: str) -> str:
    """Poetry's '^3.11' and '~3.11' as PEP 440; its other forms ('>=3.11,<3.14') are PEP 440 already."""
    clauses = []
    for clause in constraint.replace(" ", "").split(","):
        caret = re.fullmatch(r"\^(\d+)\.(\d+)(?:\.\d+)?", clause)
        tilde = re.fullmatch(r"~(\d+)\.(\d+)(?:\.\d+)?", clause)
        if caret:
            clauses += [f">={caret.group(1)}.{caret.group(2)}", f"<{int(caret.group(1)) + 1}"]
        elif tilde:
            clauses += [
                f">={tilde.group(1)}.{tilde.group(2)}",
                f"<{tilde.group(1)}.{int(tilde.group(2)) + 1}",
            ]
        else:
            clauses.append(clause)
    return ",".join(clauses)
