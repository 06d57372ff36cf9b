"""Local Nix commands: build, and copy closures to a host over SSH."""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.remote import process
from djdeploy.remote.ssh import SshTarget

# `nix copy` and `nix build` of flakes are still marked experimental in every Nix we support: djdeploy enables
# them for its own commands, so that no nix.conf needs changing.
NIX_COMMAND = ("nix", "--extra-experimental-features", "nix-command flakes")
# The oldest Nix djdeploy works with: Debian 12's nix-bin.
MINIMUM_NIX_VERSION = (2, 8)
# "nix (Nix) 2.8.0", "nix (Nix) 2.26.3", "nix (Lix, like Nix) 2.91.1", "nix (Nix) 2.8pre20220311_d532269":
# the version is the line's last word.
_VERSION = re.compile(r"(\d+)\.(\d+)\S*\s*$")


def parse_version(version_output: str) -> tuple[int, int] | None:
    """(major, minor) of `nix --version`'s output, or None when it names no version."""
    lines = version_output.strip().splitlines()
    found = _VERSION.search(lines[0]) if lines else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def check_version(version_output: str) -> None:
    """Refuse a Nix older than the minimum, naming what was found and how to get a newer one."""
    version = parse_version(version_output)
    if version is not None and version >= MINIMUM_NIX_VERSION:
        return
    minimum = ".".join(map(str, MINIMUM_NIX_VERSION))
    found = version_output.strip().splitlines()[0] if version_output.strip() else "nothing"
    raise DjdeployError(
        f"djdeploy needs Nix {minimum} or newer on this machine, but `nix --version` says {found!r}. "
        f"Install a newer Nix (Debian 12's and 13's nix-bin package, or the installer at "
        f"https://nixos.org/download) and make sure the `nix` first on PATH is that one, then run the "
        "command again."
    )


@functools.cache
def require_supported_version() -> None:
    """Check the local Nix once per run, before the first Nix command."""
    check_version(process.output(["nix", "--version"], timeout=60))


def ssh_options(target: SshTarget) -> list[str]:
    """OpenSSH options for Nix's own SSH connections, checking host keys as strictly as djdeploy does."""
    options = ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(target.ssh.port)]
    if target.ssh.known_hosts is not None:
        options += ["-o", f"UserKnownHostsFile={target.ssh.known_hosts}"]
    if target.ssh.identity is not None:
        options += ["-o", "IdentitiesOnly=yes", "-i", str(target.ssh.identity)]
    return options


def store_uri(target: SshTarget) -> str:
    return f"ssh://{target.ssh.user}@{target.address}"


@dataclass(frozen=True)
class StorePath:
    path: str
    nar_size: int

    @property
    def name(self) -> str:
        """The store path without its hash: /nix/store/abc-django-5.2 -> django-5.2."""
        return Path(self.path).name.split("-", 1)[-1]


def closure(path: Path) -> list[StorePath]:
    """Every store path the given one needs, with its size."""
    info = json.loads(process.output([*NIX_COMMAND, "path-info", "--json", "--recursive", str(path)]))
    return [StorePath(entry["path"], int(entry.get("narSize", 0))) for entry in info]


def copy_closure(
    target: SshTarget,
    path: Path,
    *,
    on_path: Callable[[str], None] | None = None,
    substitute_on_destination: bool = False,
) -> None:
    """Copy a store path and what it references that the host lacks; on_path hears of each path copied."""
    argv = [*NIX_COMMAND, "copy", "-v", "--to", store_uri(target), str(path)]
    if substitute_on_destination:
        argv.append("--substitute-on-destination")

    def on_line(line: str) -> None:
        if on_path is not None and line.startswith("copying path '"):
            on_path(line.split("'", 2)[1])

    process.stream(
        argv,
        on_line,
        env={"NIX_SSHOPTS": shlex.join(ssh_options(target))},
        hint=f"Check that {target.display} is reachable and that its user may write to the Nix store "
        "(a non-root SSH user must be in the host's nix.settings.trusted-users).",
    )
