"""lab.yaml: one's own Django project on the lab hosts, with no Nix written by hand.

It names the project directory, its settings and WSGI modules and, when it is not found by itself, the lock
file that pins its dependencies. lab.rehearse turns it into an inventory whose hosts build
nix/lab/project.nix, the documented Nix entry point, with those arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from djdeploy.inventory import InventoryError, compose_file
from djdeploy.lab import lockfile, pythons
from djdeploy.lab.control import inventory_defaults
from djdeploy.lab.image import DEBIAN_12, ImageRecipe, image_path
from djdeploy.lab.layout import LabLayout

PROJECT_NIX = Path(__file__).resolve().parents[2] / "nix" / "lab" / "project.nix"
PROJECT_KEYS = (
    "name",
    "project",
    "settings",
    "wsgi",
    "hostname",
    "requirements",
    "worker_class",
    "env",
    "env_files",
    "health_check_path",
    "python",
)
WORKER_CLASSES = ("sync", "gthread", "gevent", "eventlet")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class LabProject:
    name: str
    directory: Path
    settings_module: str
    wsgi_module: str
    hostname: str
    lock_file: Path
    worker_class: str = "gevent"
    env: dict[str, str] = field(default_factory=dict)
    env_files: tuple[str, ...] = ()
    health_check_path: str = "/"
    # The image of the hosts, whose Python the project asked for (djdeploy/lab/pythons.py).
    image: ImageRecipe = DEBIAN_12


def load(path: Path) -> LabProject:
    """Read and validate lab.yaml."""
    if not path.is_file():
        raise InventoryError(
            f"No lab project file at {path}. Write one naming your project, for example "
            "`settings: config.settings.production` and `wsgi: config.wsgi` (see the README's "
            '"Rehearse your own project"), or point to it with --file.'
        )
    root, reader = compose_file(path, "at least `settings:` and `wsgi:`")
    fields = reader.mapping(root, "", PROJECT_KEYS)

    def text(key: str, default: str | None = None) -> str:
        if key not in fields:
            if default is None:
                raise reader.fail(root, key, "missing")
            return default
        return reader.scalar(fields[key], key, str, "a string")

    directory = (path.parent / text("project", ".")).resolve()
    if not directory.is_dir():
        raise reader.fail(fields["project"], "project", f"{directory} is not a directory")
    settings, wsgi = text("settings"), text("wsgi")
    for key, module in (("settings", settings), ("wsgi", wsgi)):
        if not _DOTTED.fullmatch(module):
            raise reader.fail(
                fields[key], key, f"expected a dotted module path such as config.wsgi, got '{module}'"
            )
        missing = _missing_module(directory, module)
        if missing:
            raise reader.fail(fields[key], key, missing)
    name = text("name", re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-") or "site")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise reader.fail(
            fields.get("name", root), "name", f"expected lower-case letters, digits and -, got '{name}'"
        )
    worker_class = text("worker_class", "gevent")
    if worker_class not in WORKER_CLASSES:
        raise reader.fail(
            fields["worker_class"], "worker_class", f"expected one of {', '.join(WORKER_CLASSES)}"
        )
    lock = (directory / text("requirements")) if "requirements" in fields else lockfile.find(directory)
    python = text("python") if "python" in fields else None
    env: dict[str, str] = {}
    if "env" in fields:
        for key, value in reader.mapping(fields["env"], "env", ()).items():
            env[key] = reader.scalar(value, f"env.{key}", str, "a string")
    return LabProject(
        name=name,
        directory=directory,
        settings_module=settings,
        wsgi_module=wsgi,
        hostname=text("hostname", f"{name}.lab"),
        lock_file=lock,
        worker_class=worker_class,
        env=env,
        env_files=reader.string_list(fields["env_files"], "env_files") if "env_files" in fields else (),
        health_check_path=text("health_check_path", "/"),
        image=pythons.choose(pythons.request_of(directory, python)),
    )


def _missing_module(directory: Path, module: str) -> str | None:
    """Why module cannot be imported from the project directory, which the site imports its code from."""
    base = directory.joinpath(*module.split("."))
    tried = [base.parent / f"{base.name}.py", base / "__init__.py"]
    if any(path.is_file() for path in tried):
        return None
    found = sorted(
        ".".join(path.relative_to(directory).with_suffix("").parts)
        for path in directory.rglob("wsgi.py")
        if not any(
            part.startswith(".") or part == "node_modules" for part in path.relative_to(directory).parts
        )
    )
    modules = f" Its WSGI modules: {', '.join(found)}." if found and module.endswith("wsgi") else ""
    return (
        f"no module {module}: the site imports its code from {directory}, where neither "
        f"{tried[0].relative_to(directory)} nor {tried[1].relative_to(directory)} exists. Name a module of "
        f"the project, as Python imports it from the directory of manage.py.{modules}"
    )


def write_inventory(layout: LabLayout, project: LabProject, host_names: list[str]) -> Path:
    """The pinned requirements, the Nix call of nix/lab/project.nix and an inventory that builds it."""
    directory = layout.projects_dir / project.name
    directory.mkdir(parents=True, exist_ok=True)
    requirements = directory / "requirements.txt"
    requirements.write_text(lockfile.requirements_text(lockfile.read(project.lock_file)))
    arguments = {
        "name": project.name,
        "src": str(project.directory),
        "requirements": str(requirements),
        "settingsModule": project.settings_module,
        "wsgiModule": project.wsgi_module,
        "hostname": project.hostname,
        "workerClass": project.worker_class,
        "extraEnv": project.env,
        "extraEnvFiles": list(project.env_files),
        "healthCheckPath": project.health_check_path,
    }
    if project.image != DEBIAN_12:
        # Builds run their Python in the image the hosts boot, so that they install its wheels.
        arguments["pythonVersion"] = project.image.python_version
        arguments["hostRoot"] = str(image_path(layout, project.image))
    (directory / "arguments.json").write_text(json.dumps(arguments, indent=2) + "\n")
    (directory / "hosts.nix").write_text(
        f"import {PROJECT_NIX} (builtins.fromJSON (builtins.readFile ./arguments.json))\n"
    )
    inventory = {
        "defaults": inventory_defaults(layout, project.name),
        "hosts": {
            name: {
                "address": layout.host(int(name.removeprefix("lab"))).address,
                "build": {"file": str(directory / "hosts.nix"), "attribute": name},
            }
            for name in host_names
        },
    }
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path
