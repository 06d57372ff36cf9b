"""Building evaluated systems elsewhere: on each target itself, or on a build host, once for its hosts."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from djdeploy.deploy import build, nix, platform, toplevel
from djdeploy.deploy.build import BuiltSystem, Derivation
from djdeploy.inventory import BuildPlace, Host
from djdeploy.remote.ssh import Remote, SshTarget


def builder_of(host: Host) -> SshTarget:
    """The machine that builds host's system (not this one)."""
    on = host.build.on
    if on.place is BuildPlace.TARGET:
        return host.ssh_target
    assert on.builder is not None  # a build host always names its machine
    return on.builder


def build_systems(
    hosts: Sequence[Host],
    sudo_password: str | None,
    on_progress: Callable[[str], None],
    *,
    parallel: int,
) -> dict[str, BuiltSystem]:
    """Evaluate every host's system here, then build each where its `build.on` says."""
    started = time.monotonic()
    derivations = build.evaluate(hosts)
    platform.require_buildable(hosts, {name: drv.system for name, drv in derivations.items()})
    here = [host for host in hosts if host.build.on.place is BuildPlace.LOCAL]
    elsewhere = [host for host in hosts if host.build.on.place is not BuildPlace.LOCAL]
    systems = build.realise_locally(here, derivations, on_progress, started) if here else {}
    return systems | build_elsewhere(
        elsewhere, derivations, sudo_password, on_progress, parallel=parallel, started=started
    )


def build_elsewhere(
    hosts: Sequence[Host],
    derivations: dict[str, Derivation],
    sudo_password: str | None,
    on_progress: Callable[[str], None],
    *,
    parallel: int,
    started: float,
) -> dict[str, BuiltSystem]:
    """Build each host's system on its builder; builders work in parallel, each with one Nix invocation
    per set of Nix settings for all its hosts, so what they share builds once."""
    groups: dict[SshTarget, list[Host]] = {}
    for host in hosts:
        groups.setdefault(builder_of(host), []).append(host)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        built = pool.map(
            lambda item: realise_on(item[0], item[1], derivations, sudo_password, on_progress),
            groups.items(),
        )
        paths = {name: path for result in built for name, path in result.items()}
    seconds = time.monotonic() - started
    return {name: BuiltSystem(name, path, seconds) for name, path in paths.items()}


def realise_on(
    builder: SshTarget,
    hosts: Sequence[Host],
    derivations: dict[str, Derivation],
    sudo_password: str | None,
    on_progress: Callable[[str], None],
) -> dict[str, Path]:
    """Copy the hosts' .drv closures to the builder and build them there (checking its host key and
    using sudo as for a target)."""
    with Remote(builder, sudo_password) as remote:
        paths: dict[str, Path] = {}
        for group in build.by_nix_options(hosts):
            drvs = [derivations[host.name].path for host in group]
            nix.copy_derivations(builder, drvs)
            argv = build.realise_command(drvs, build.options(group[0]))
            result = remote.run_shell(
                shlex.join(argv),
                check=False,
                privileged=True,
                timeout=3600,
                on_error_line=build.BuildProgress(on_progress).line,
            )
            if not result.ok:
                raise build.failed(group, result.stderr, f" on {builder.display}")
            outputs = build.output_paths(result.stdout, group)
            built = dict(zip((host.name for host in group), outputs, strict=True))
            missing = remote.run_shell(toplevel.missing_version_command(list(built.values()))).stdout.split()
            for name, path in built.items():
                if str(path) in missing:
                    raise toplevel.not_a_system(path, name)
            paths.update(built)
        return paths
