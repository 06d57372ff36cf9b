"""Evaluating hosts' systems (flake NixOS configurations or Nix files' attributes), building them here."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy.deploy import nix, platform
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


@dataclass(frozen=True)
class Derivation:
    """A host's system as evaluated: its .drv, and the platform it must be built on."""

    host: str
    path: Path
    system: str


def installable(host: Host) -> tuple[str, ...]:
    """The nix-instantiate / nix eval arguments naming the host's system."""
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
    """Evaluate and build every host's system on this machine, refusing before any build a system for a
    platform this machine cannot build. on_progress hears which derivation is being built."""
    started = time.monotonic()
    derivations = evaluate(hosts)
    platform.require_buildable(hosts, {name: drv.system for name, drv in derivations.items()})
    return realise_locally(hosts, derivations, on_progress, started)


def evaluate(hosts: Sequence[Host]) -> dict[str, Derivation]:
    """Each host's system derivation, evaluated on this machine without building: one nix-instantiate
    per file and Nix settings, one `nix eval` per flake host."""
    nix.require_supported_version()
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[Host]] = {}
    for host in hosts:
        kind = installable(host)
        groups.setdefault((kind[1] if kind[0] == "file" else "", host.build.nix_options), []).append(host)
    paths: dict[str, Path] = {}
    for (file, _), group in groups.items():
        if file:
            argv = ["nix-instantiate", file, *options(group[0])]
            for host in group:
                if host.build.attribute:
                    argv += ["-A", host.build.attribute]
            drvs = output_paths(_evaluated(argv, group), group)
        else:
            drvs = [
                Path(_evaluated(flake_eval_command(installable(host)[1], options(host)), [host]).strip())
                for host in group
            ]
        paths.update(zip((host.name for host in group), drvs, strict=True))
    # Every derivation has `system` in its environment: the platform Nix must build it on.
    systems = process.output(["nix-store", "--query", "--binding", "system", *map(str, paths.values())])
    return {
        name: Derivation(name, path, system)
        for (name, path), system in zip(paths.items(), systems.split(), strict=True)
    }


def flake_eval_command(reference: str, nix_options: Sequence[str]) -> list[str]:
    """`nix eval` of a flake output's .drv path, which evaluates it without building anything."""
    return [*nix.NIX_COMMAND, "eval", "--raw", *nix_options, f"{reference}.drvPath"]


def _evaluated(argv: list[str], hosts: Sequence[Host]) -> str:
    result = process.run(argv, check=False, timeout=3600)
    if result.returncode != 0:
        raise BuildError(
            f"Evaluating the system of {names(hosts)} failed. What Nix said:\n{summary(result.stderr)}"
        )
    return result.stdout


def realise_locally(
    hosts: Sequence[Host],
    derivations: dict[str, Derivation],
    on_progress: Callable[[str], None],
    started: float,
) -> dict[str, BuiltSystem]:
    """Build evaluated systems on this machine, one Nix invocation per set of Nix settings so that shared
    paths build once."""
    paths: dict[str, Path] = {}
    for group in by_nix_options(hosts):
        argv = realise_command([derivations[host.name].path for host in group], options(group[0]))
        result = process.run_watching(argv, BuildProgress(on_progress).line, timeout=3600)
        if result.returncode != 0:
            raise failed(group, result.stderr)
        paths.update(zip((host.name for host in group), output_paths(result.stdout, group), strict=True))
    seconds = time.monotonic() - started
    return {name: BuiltSystem(name, path, seconds) for name, path in paths.items()}


def realise_command(derivations: Sequence[Path], nix_options: Sequence[str]) -> list[str]:
    """Build derivations that are in the store, printing their outputs in the same order."""
    return ["nix-store", "--realise", *nix_options, *map(str, derivations)]


def by_nix_options(hosts: Sequence[Host]) -> list[list[Host]]:
    """Hosts grouped by their Nix settings: each group builds in one Nix invocation."""
    groups: dict[tuple[tuple[str, str], ...], list[Host]] = {}
    for host in hosts:
        groups.setdefault(host.build.nix_options, []).append(host)
    return list(groups.values())


def options(host: Host) -> list[str]:
    """The host's Nix settings as `--option NAME VALUE` words."""
    return [word for name, value in host.build.nix_options for word in ("--option", name, value)]


@dataclass
class BuildProgress:
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


def failed(hosts: Sequence[Host], log: str, where: str = "") -> BuildError:
    """A failed build, naming the error in its log; where: " on BUILDER" for a build elsewhere."""
    return BuildError(
        f"Building the system of {names(hosts)}{where} failed. What the build said:\n{summary(log)}"
    )


def output_paths(stdout: str, hosts: Sequence[Host]) -> list[Path]:
    """The store paths Nix printed, one a host."""
    outputs = [Path(line) for line in stdout.split()]
    if len(outputs) != len(hosts):
        raise BuildError(
            f"Building {names(hosts)} gave {len(outputs)} results for {len(hosts)} hosts:\n{stdout}"
        )
    return outputs


def names(hosts: Sequence[Host]) -> str:
    return ", ".join(host.name for host in hosts)


def summary(log: str, limit: int = 25) -> str:
    """The error lines of a build log and the last lines before them, not the whole log."""
    lines = log.rstrip().splitlines()
    important = [index for index, line in enumerate(lines) if _IMPORTANT.match(line)]
    if not important:
        return "\n".join(lines[-limit:])
    first = max(0, important[0] - 10)
    excerpt = lines[first:]
    return "\n".join(excerpt[-limit:] if len(excerpt) > limit else excerpt)
