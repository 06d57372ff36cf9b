"""Building hosts' systems locally: flake NixOS configurations or a Nix file's attributes."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy.deploy import nix
from djdeploy.errors import DjdeployError
from djdeploy.inventory import Host
from djdeploy.remote import process

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


def build_systems(
    hosts: Sequence[Host], on_progress: Callable[[str], None] = lambda text: None
) -> dict[str, BuiltSystem]:
    """Build every host's system with one Nix invocation per file (or for all flakes) and Nix settings, so
    shared paths build once. on_progress hears which derivation is being built."""
    nix.require_supported_version()
    started = time.monotonic()
    # Key: (kind, the file, or "" for flakes, Nix settings).
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Host]] = {}
    for host in hosts:
        kind = installable(host)
        file = "" if kind[0] == "flake" else kind[1]
        groups.setdefault((kind[0], file, host.build.nix_options), []).append(host)
    paths: dict[str, Path] = {}
    for (kind_name, file, _), group in groups.items():
        options = _options(group[0])
        if kind_name == "flake":
            outputs = _build_flakes(group, options, on_progress)
        else:
            argv = ["nix-build", file, "--no-out-link", *options]
            for host in group:
                if host.build.attribute:
                    argv += ["-A", host.build.attribute]
            outputs = _output_paths(_run_build(argv, group, on_progress), group)
        paths.update(zip((host.name for host in group), outputs, strict=True))
    seconds = time.monotonic() - started
    return {name: BuiltSystem(name, path, seconds) for name, path in paths.items()}


def _options(host: Host) -> list[str]:
    return [word for name, value in host.build.nix_options for word in ("--option", name, value)]


def flake_build_command(references: Sequence[str], options: Sequence[str], links: Path) -> list[str]:
    """`nix build` of flake outputs, leaving links[-N] to the Nth one's result.

    Links, because Nix 2.8 has no --print-out-paths and its --json lists results in another order than
    asked for; the links' names follow the order of the references."""
    return [*nix.NIX_COMMAND, "build", "--out-link", str(links), *options, *references]


def _build_flakes(
    hosts: Sequence[Host], options: Sequence[str], on_progress: Callable[[str], None]
) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="djdeploy-build-") as directory:
        links = Path(directory) / "result"
        argv = flake_build_command([installable(host)[1] for host in hosts], options, links)
        _run_build(argv, hosts, on_progress)
        # `result` for the first reference, then `result-1`, `result-2`, ...
        names = [links.name] + [f"{links.name}-{index}" for index in range(1, len(hosts))]
        return [Path(os.readlink(links.with_name(name))) for name in names]


@dataclass
class _BuildProgress:
    """Turns Nix's log lines into "3/12 python3.11-django-5.2" for whoever shows progress."""

    report: Callable[[str], None]
    total: int = 0
    started: int = 0

    def line(self, text: str) -> None:
        if planned := _PLANNED.match(text):
            self.total += int(planned.group(1))
        elif building := _BUILDING.match(text):
            self.started += 1
            count = f"{self.started}/{self.total} " if self.total else ""
            self.report(f"{count}{building.group(1)}")


_PLANNED = re.compile(r"these (\d+) derivations will be built")
_BUILDING = re.compile(r"building '/nix/store/[0-9a-z]{32}-(.+)\.drv'")


def _run_build(
    argv: list[str], hosts: Sequence[Host], on_progress: Callable[[str], None]
) -> subprocess.CompletedProcess[str]:
    result = process.run_watching(argv, _BuildProgress(on_progress).line, timeout=3600)
    if result.returncode != 0:
        raise BuildError(
            f"Building the system of {_names(hosts)} failed. What the build said:\n{_summary(result.stderr)}"
        )
    return result


def _output_paths(result: subprocess.CompletedProcess[str], hosts: Sequence[Host]) -> list[Path]:
    """nix-build's printed results, one a host."""
    outputs = [Path(line) for line in result.stdout.split()]
    if len(outputs) != len(hosts):
        raise BuildError(
            f"Building {_names(hosts)} gave {len(outputs)} results for {len(hosts)} hosts:\n{result.stdout}"
        )
    return outputs


def _names(hosts: Sequence[Host]) -> str:
    return ", ".join(host.name for host in hosts)


def _summary(log: str, limit: int = 25) -> str:
    """The error lines of a build log and the last lines before them, not the whole log."""
    lines = log.rstrip().splitlines()
    important = [index for index, line in enumerate(lines) if _IMPORTANT.match(line)]
    if not important:
        return "\n".join(lines[-limit:])
    first = max(0, important[0] - 10)
    excerpt = lines[first:]
    return "\n".join(excerpt[-limit:] if len(excerpt) > limit else excerpt)
