"""Building hosts' systems locally: flake NixOS configurations or a Nix file's attributes."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy import process
from djdeploy.errors import DjdeployError
from djdeploy.inventory import Host
from djdeploy.nix import NIX_COMMAND, NO_SUBSTITUTERS

# Lines of a failed build's log that say what went wrong.
_IMPORTANT = re.compile(r"^(error|\s+error|builder for|.*Traceback|.*Error:|.*error:)", re.IGNORECASE)


class BuildError(DjdeployError):
    pass


@dataclass(frozen=True)
class BuiltSystem:
    host: str
    path: Path
    seconds: float


def installable(host: Host) -> tuple[str, ...]:
    """The nix-build / nix build arguments naming the host's system."""
    build = host.build
    if build.flake:
        reference = build.flake
        if ".config.system.build" not in reference:
            reference += ".config.system.build.toplevel"
        return ("flake", reference)
    if build.file:
        return ("file", str(build.file), build.attribute or "")
    raise DjdeployError(
        f"Host {host.name} says nothing to build: give it "
        f"`build: {{flake: .#nixosConfigurations.{host.name}}}` or `build: {{file: ..., attribute: ...}}` "
        "in the inventory."
    )


def build_systems(hosts: Sequence[Host]) -> dict[str, BuiltSystem]:
    """Build every host's system with one Nix invocation per kind, so shared paths build once."""
    started = time.monotonic()
    by_file: dict[str, list[Host]] = {}
    flakes: list[Host] = []
    for host in hosts:
        kind = installable(host)
        if kind[0] == "flake":
            flakes.append(host)
        else:
            by_file.setdefault(kind[1], []).append(host)
    paths: dict[str, Path] = {}
    for file, file_hosts in by_file.items():
        argv = ["nix-build", file, "--no-out-link", *NO_SUBSTITUTERS]
        for host in file_hosts:
            if host.build.attribute:
                argv += ["-A", host.build.attribute]
        outputs = _run_build(argv, file_hosts)
        paths.update(zip((host.name for host in file_hosts), outputs, strict=True))
    if flakes:
        argv = [
            *NIX_COMMAND,
            "--extra-experimental-features",
            "flakes",
            "build",
            "--no-link",
            "--print-out-paths",
        ]
        argv += [installable(host)[1] for host in flakes]
        outputs = _run_build(argv, flakes)
        paths.update(zip((host.name for host in flakes), outputs, strict=True))
    seconds = time.monotonic() - started
    return {name: BuiltSystem(name, path, seconds) for name, path in paths.items()}


def _run_build(argv: list[str], hosts: Sequence[Host]) -> list[Path]:
    result = process.run(argv, check=False, timeout=3600)
    names = ", ".join(host.name for host in hosts)
    if result.returncode != 0:
        raise BuildError(
            f"Building the system of {names} failed. What the build said:\n{_summary(result.stderr)}"
        )
    outputs = [Path(line) for line in result.stdout.split()]
    if len(outputs) != len(hosts):
        raise BuildError(
            f"Building {names} gave {len(outputs)} results for {len(hosts)} hosts:\n{result.stdout}"
        )
    return outputs


def _summary(log: str, limit: int = 25) -> str:
    """The error lines of a build log and the last lines before them, not the whole log."""
    lines = log.rstrip().splitlines()
    important = [index for index, line in enumerate(lines) if _IMPORTANT.match(line)]
    if not important:
        return "\n".join(lines[-limit:])
    first = max(0, important[0] - 10)
    excerpt = lines[first:]
    return "\n".join(excerpt[-limit:] if len(excerpt) > limit else excerpt)
