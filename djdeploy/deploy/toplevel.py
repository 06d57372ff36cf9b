"""The check that a store path to deploy is a system toplevel, before anything is copied or switched."""

from __future__ import annotations

import shlex
from pathlib import Path

from djdeploy.errors import DjdeployError

# Every NixOS toplevel has it (nixpkgs nixos/modules/system/activation/top-level.nix, systemBuilder), and so
# does every lab toplevel; a package, a closure of static files or an `etc` tree has none.
VERSION_FILE = "nixos-version"


class NotASystem(DjdeployError):
    """The built path is not a system's toplevel: nothing was copied or switched."""


def require_system(path: Path, host: str) -> None:
    if not (path / VERSION_FILE).is_file():
        raise not_a_system(path, host)


def missing_version_command(paths: list[Path]) -> str:
    """Prints each of paths that has no VERSION_FILE: the same check, on the machine that built them."""
    quoted = " ".join(shlex.quote(str(path)) for path in paths)
    return f'for path in {quoted}; do [ -f "$path/{VERSION_FILE}" ] || echo "$path"; done'


def not_a_system(path: Path, host: str) -> NotASystem:
    return NotASystem(
        f"The build of {host} gave {path}, which is not a NixOS system (it has no {VERSION_FILE}), so "
        f"nothing was copied and {host} was not switched. Make the host's `build` name a system's "
        f"toplevel: `build: {{flake: .#nixosConfigurations.{host}}}` (djdeploy takes its "
        "config.system.build.toplevel) or a file attribute that evaluates to a system's "
        "config.system.build.toplevel."
    )
