"""Nix commands: copy closures to a host over SSH, from this machine or from a build host."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy.errors import CommandError, DjdeployError
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


@functools.cache
def copy_to_host_script() -> str:
    """Run on a build host to copy a system to a target (see copy_between); read when first needed (Python's
    importlib.resources costs start-up time)."""
    from importlib import resources

    return resources.files("djdeploy.deploy").joinpath("copy_to_host.sh").read_text()


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

    try:
        process.stream(
            argv,
            _copied_paths(on_path),
            env={"NIX_SSHOPTS": shlex.join(ssh_options(target))},
            hint=f"Check that {target.display} is reachable and that its user may write to the Nix store "
            "(a non-root SSH user must be in the host's nix.settings.trusted-users).",
        )
    except CommandError as exc:
        if DISK_FULL in exc.output:
            raise HostDiskFull(target) from exc
        raise


# What a Nix store that cannot grow says (ENOSPC); `nix copy` only reads on this side.
DISK_FULL = "No space left on device"


class HostDiskFull(DjdeployError):
    def __init__(self, target: SshTarget) -> None:
        super().__init__(
            f"The copy to {target.display} failed because the host's disk is full: its Nix store has no "
            "space left for the new system. Nothing was switched. Free space on the host "
            "(`nix-collect-garbage --delete-older-than 30d` there removes old generations and what only "
            "they used; `df -h /nix/store` "
            "shows how much is free), then deploy again."
        )


def _copied_paths(on_path: Callable[[str], None] | None) -> Callable[[str], None]:
    """A reader of `nix copy -v`'s lines that tells on_path of each path copied."""

    def on_line(line: str) -> None:
        if on_path is not None and line.startswith("copying path '"):
            on_path(line.split("'", 2)[1])

    return on_line


def copy_derivations(target: SshTarget, derivations: Sequence[Path]) -> None:
    """Copy .drv files and what they need to build (their sources, the .drv files they depend on)."""
    process.run(
        [*NIX_COMMAND, "copy", "--derivation", "--to", store_uri(target), *map(str, derivations)],
        env={"NIX_SSHOPTS": shlex.join(ssh_options(target))},
        timeout=3600,
        hint=f"Check that {target.display} is reachable and that its user may write to the Nix store "
        "(a non-root SSH user must be in the host's nix.settings.trusted-users).",
    )


def copy_between(
    source: SshTarget, destination: SshTarget, path: Path, *, on_path: Callable[[str], None] | None = None
) -> None:
    """Copy a store path's closure from source to destination directly: `nix copy` runs on source.

    source logs in to destination with this machine's key, through SSH agent forwarding (an agent of
    this copy alone when the inventory names the key file), and checks its host key against the lines
    this machine's known_hosts has for it."""
    known_hosts = destination.ssh.known_hosts or Path("~/.ssh/known_hosts").expanduser()
    lines = process.run(
        ["ssh-keygen", "-F", destination.known_hosts_name, "-f", str(known_hosts)], check=False
    ).stdout.splitlines()
    keys = [line for line in lines if line.strip() and not line.startswith("#")]
    on_source = [
        "sh",
        "-c",
        copy_to_host_script(),
        "copy-to-host",
        store_uri(destination),
        str(destination.ssh.port),
    ]
    ssh = [
        "ssh",
        *ssh_options(source),
        "-o",
        "ForwardAgent=yes",
        f"{source.ssh.user}@{source.address}",
        shlex.join([*on_source, str(path), *keys]),
    ]

    process.stream(
        [*_agent_holding(destination.ssh.identity), *ssh],
        _copied_paths(on_path),
        timeout=3600,
        hint=f"{source.display} could not copy to {destination.display}: check that it reaches "
        f"{destination.address} on port {destination.ssh.port}.",
    )


def _agent_holding(identity: Path | None) -> list[str]:
    """A command prefix that forwards identity (or, without one, the user's agent or default keys)."""
    if identity is not None:
        return [
            "ssh-agent",
            "sh",
            "-c",
            'ssh-add -q "$1" 2>/dev/null && shift && exec "$@"',
            "sh",
            str(identity),
        ]
    if os.environ.get("SSH_AUTH_SOCK"):
        return []
    return ["ssh-agent", "sh", "-c", 'ssh-add -q 2>/dev/null; exec "$@"', "sh"]
