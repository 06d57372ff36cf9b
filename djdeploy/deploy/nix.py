"""Local Nix commands: build, and copy closures to a host over SSH."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from djdeploy.remote import process
from djdeploy.remote.ssh import SshTarget

# `nix copy` is part of the new command line, still marked experimental in the Nix versions we support.
NIX_COMMAND = ("nix", "--extra-experimental-features", "nix-command")


def ssh_options(target: SshTarget) -> list[str]:
    """OpenSSH options for Nix's own SSH connections, checking host keys as strictly as djdeploy does."""
    options = ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(target.port)]
    if target.known_hosts is not None:
        options += ["-o", f"UserKnownHostsFile={target.known_hosts}"]
    if target.identity is not None:
        options += ["-o", "IdentitiesOnly=yes", "-i", str(target.identity)]
    return options


def store_uri(target: SshTarget) -> str:
    return f"ssh://{target.user}@{target.address}"


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
