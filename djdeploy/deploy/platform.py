"""Which platforms this machine's Nix builds for, and refusing hosts whose system it cannot build."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy.deploy import nix
from djdeploy.errors import DjdeployError
from djdeploy.inventory import BuildPlace, Host
from djdeploy.remote import process

# Reads a file named in the `builders` setting.
_Reader = Callable[[str], str]


class PlatformError(DjdeployError):
    pass


@dataclass(frozen=True)
class Platforms:
    """The platforms a Nix builds for: its own, those it emulates or also runs, its remote builders'."""

    system: str
    extra: frozenset[str] = frozenset()
    remote_builders: frozenset[str] = frozenset()

    def builds(self, system: str) -> bool:
        return system == self.system or system in self.extra or system in self.remote_builders


def parse_config(config: str, read_file: _Reader = lambda path: Path(path).read_text()) -> Platforms:
    """Platforms from `nix show-config`'s `name = value` lines (system, extra-platforms, builders)."""
    settings = dict(line.split(" = ", 1) for line in config.splitlines() if " = " in line)
    system = settings.get("system", "").strip()
    return Platforms(
        system,
        frozenset(settings.get("extra-platforms", "").split()),
        _builder_systems(settings.get("builders", ""), system, read_file),
    )


def _builder_systems(builders: str, local: str, read_file: _Reader) -> frozenset[str]:
    """The platforms of the remote builders in a `builders` setting (`@FILE` reads them from FILE).

    Each builder is `URI SYSTEMS ...`, separated by `;` or new lines; SYSTEMS is comma-separated, and a
    builder that names none builds for the local platform (the machines file format of nix.conf)."""
    systems: set[str] = set()
    for line in builders.replace(";", "\n").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry.startswith("@"):
            # Nix's default, @/etc/nix/machines, often does not exist.
            with contextlib.suppress(OSError):
                systems |= _builder_systems(read_file(entry[1:]), local, read_file)
        elif entry:
            fields = entry.split()
            named = fields[1] if len(fields) > 1 and fields[1] != "-" else local
            systems |= set(named.split(","))
    return frozenset(systems)


@functools.cache
def local() -> Platforms:
    """What this machine's Nix builds for, asked once per run."""
    return parse_config(process.output([*nix.NIX_COMMAND, "show-config"], timeout=60))


def require_buildable(hosts: Sequence[Host], systems: Mapping[str, str]) -> None:
    """Refuse, before any build, the hosts built here whose system this machine cannot build."""
    here = [host for host in hosts if host.build.on.place is BuildPlace.LOCAL]
    if not here:
        return
    platforms = local()
    unbuildable = [host for host in here if not platforms.builds(systems[host.name])]
    if not unbuildable:
        return
    needed = sorted({systems[host.name] for host in unbuildable})
    names = ", ".join(host.name for host in unbuildable)
    also = f" (and {', '.join(sorted(platforms.extra))})" if platforms.extra else ""
    raise PlatformError(
        f"{names} {'needs a system' if len(unbuildable) == 1 else 'need systems'} built for "
        f"{' and '.join(needed)}, but this machine builds for {platforms.system}{also}, so nothing was "
        "built. Build elsewhere: give the host `build: {on: target}` in the inventory (it builds its own "
        "system) or `build: {on: HOST}` (a build host of the inventory, or user@host), or pass "
        f"`--build-on target`; or add a Nix remote builder for {needed[0]} to this machine's nix.conf "
        f"(`builders = ssh://user@builder {needed[0]}`), then deploy again."
    )
