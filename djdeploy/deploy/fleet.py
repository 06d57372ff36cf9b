"""Deploying a fleet: build every system at once, then deploy the hosts in parallel and in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from djdeploy.deploy import build, interrupt
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Outcome, Result
from djdeploy.errors import DjdeployError
from djdeploy.inventory import BuildPlace, Host

if TYPE_CHECKING:
    from rich.console import Console

    from djdeploy.remote.ssh import Remote

# What follows the build (host_run and the modules it uses, the cache's push, the builders' hosts) is
# imported where it is used: the build starts without it, and the connections' threads load host_run while
# the build runs.


def deploy(hosts: Sequence[Host], options: Options, console: Console) -> list[Result]:
    """Deploy each host, in parallel and in batches; one host's failure never hides the others'.

    Ctrl-C stops every host under way (interrupt.Stopper) and raises interrupt.Stopped with their outcome.
    """
    batches = _batches(hosts, options.batch)
    opened: dict[str, Future[Remote]] = {}
    try:
        with console.status("Building") as status:
            # The first batch's connections open while the systems build, so a host that cannot be reached
            # (or offers an unknown key) is known before a long build ends, and the deploy starts sooner.
            # Each host waits only for its own connection.
            opener = ThreadPoolExecutor(max_workers=max(1, options.parallel))
            opened = {host.name: opener.submit(_connect, host, options, console) for host in batches[0]}
            opener.shutdown(wait=False)
            started = time.monotonic()
            systems = _build(hosts, options, lambda text: status.update(f"Building {text}"))
    except BaseException as exc:
        for connection in opened.values():
            connection.add_done_callback(_close)
        if isinstance(exc, KeyboardInterrupt):
            raise interrupt.Stopped(
                "Stopped by Ctrl-C during the build: nothing was copied or switched."
            ) from None
        raise
    build_seconds = time.monotonic() - started
    console.print(
        f"[green]✓[/] build {', '.join(h.name for h in hosts)}{_where(hosts)} [dim]{build_seconds:.2f} s[/]"
    )
    if not options.dry_run:  # before any host is touched: a cache that cannot be written stops here
        from djdeploy.deploy import cache

        cache.push_for_hosts(
            [
                (host.cache, systems[host.name].path)
                for host in hosts
                if host.cache is not None and host.build.on.place is BuildPlace.LOCAL
            ],
            console,
        )
    results: list[Result] = []
    stopper: interrupt.Stopper[Result] = interrupt.Stopper(console.print)
    for number, batch in enumerate(batches, start=1):
        if len(batches) > 1:
            console.rule(f"batch {number} of {len(batches)}: {', '.join(host.name for host in batch)}")
        jobs = [
            partial(
                _deploy_host,
                host,
                systems[host.name].path,
                options,
                console,
                stopper,
                show_host=len(hosts) > 1,
                opened=opened.get(host.name),
            )
            for host in batch
        ]
        try:
            batch_results = stopper.run(jobs, options.parallel)
        except interrupt.Stopped as stopped:
            ended = [*results, *(r for r in stopped.results if isinstance(r, Result))]
            raise interrupt.Stopped(
                "\n\n".join([stopped.message, *(r.message for r in ended if not r.ok)]), ended
            ) from None
        results += [
            replace(result, steps=(("build", build_seconds), *result.steps)) for result in batch_results
        ]
        if any(not result.ok for result in batch_results) and number < len(batches):
            skipped = [host.name for later in batches[number:] for host in later]
            console.print(
                f"[red]Stopping after batch {number} because it failed; not deployed: {', '.join(skipped)}"
            )
            results += [Result(name, Outcome.SKIPPED, "an earlier batch failed") for name in skipped]
            break
    return results


def _build(
    hosts: Sequence[Host], options: Options, on_progress: Callable[[str], None]
) -> dict[str, build.BuiltSystem]:
    if all(host.build.on.place is BuildPlace.LOCAL for host in hosts):
        return build.build_systems(hosts, on_progress)
    from djdeploy.deploy import remote_build

    return remote_build.build_systems(hosts, options.sudo_password, on_progress, parallel=options.parallel)


def _where(hosts: Sequence[Host]) -> str:
    """ " on lab2" when the systems built elsewhere than here."""
    places = set()
    for host in hosts:
        if host.build.on.place is BuildPlace.TARGET:
            places.add("the target" if len(hosts) == 1 else "the targets")
        elif host.build.on.place is BuildPlace.BUILD_HOST:
            from djdeploy.deploy import remote_build

            places.add(remote_build.builder_of(host).name)
    return f" on {', '.join(sorted(places))}" if places else ""


def _connect(host: Host, options: Options, console: Console) -> Remote:
    from djdeploy.deploy import host_run

    try:
        return host_run.connect(host, options)
    except DjdeployError:
        console.print(f"[red]✗[/] [bold]{host.name}[/]: cannot connect (details in the summary)")
        raise


def _close(connection: Future[Remote]) -> None:
    if connection.exception() is None:
        connection.result().close()


def _batches(hosts: Sequence[Host], size: int | None) -> list[list[Host]]:
    if not size:
        return [list(hosts)]
    return [list(hosts[index : index + size]) for index in range(0, len(hosts), size)]


def _deploy_host(
    host: Host,
    system: Path,
    options: Options,
    console: Console,
    stopper: interrupt.Stopper[Result],
    *,
    show_host: bool,
    opened: Future[Remote] | None,
) -> Result:
    from djdeploy.deploy.host_run import DeployFailed, HostRun, StepLog

    log = StepLog(console, host.name, show_host)
    try:
        remote = opened.result() if opened else _connect(host, options, console)
        run = HostRun(host, remote, options, console, log, stopping=stopper.event)
        stopper.register(run)
        try:
            return run.deploy(system)
        finally:
            run.close()
    except DeployFailed as exc:
        return Result(host.name, exc.outcome, exc.message, steps=tuple(log.steps))
    except DjdeployError as exc:
        return Result(host.name, Outcome.FAILED, exc.message, steps=tuple(log.steps))
    except Exception as exc:  # one host's bug must not hide the other hosts' results
        return Result(host.name, Outcome.FAILED, f"unexpected error: {exc!r}", steps=tuple(log.steps))
