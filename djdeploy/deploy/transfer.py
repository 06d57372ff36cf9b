"""Copying a system's closure to a host: what it lacks, and a progress bar of paths and bytes; or, for a
system built elsewhere, from its build host (or nothing, when the host built it)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, suppress
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from djdeploy.deploy import cache, nix
from djdeploy.errors import DjdeployError
from djdeploy.inventory import BuildOn, BuildPlace, Cache
from djdeploy.remote.ssh import Remote


def copy_step(built_on: BuildOn) -> str | None:
    """The name of the deploy's copy step for a system built there; None: the host has it already."""
    if built_on.place is BuildPlace.TARGET:
        return None
    if built_on.builder is not None:
        return f"copy the closure from {built_on.builder.name}"
    return "copy the closure"


def fetched_from_cache(
    remote: Remote,
    binary_cache: Cache,
    system: Path,
    copy: str,
    step: Callable[[str], AbstractContextManager[object]],
) -> str | None:
    """Have the host fetch the system from the cache as a step of its own: then there is no copy step
    (None); a host that cannot reach the cache gets the direct copy, its step saying why."""
    unreachable = cache.unreachable_reason(remote, binary_cache)
    if unreachable is not None:
        return f"{copy} (the host cannot reach the cache: {unreachable})"
    with step("fetch the closure from the cache"):
        cache.fetch(remote, binary_cache, system)
    return None


def deliver(
    remote: Remote,
    system: Path,
    built_on: BuildOn,
    substitute_on_destination: bool,
    console: Console,
    *,
    show: bool,
) -> None:
    """Bring the system to the host: from this machine, or straight from its build host."""
    if built_on.builder is None:
        copy_with_progress(remote, system, substitute_on_destination, console, show=show)
        return
    copied: list[str] = []
    nix.copy_between(built_on.builder, remote.target, system, on_path=copied.append)
    if show:
        console.print(f"  {built_on.builder.name} copied {len(copied)} paths")


def copy_with_progress(
    remote: Remote, system: Path, substitute_on_destination: bool, console: Console, *, show: bool
) -> None:
    if not show:
        nix.copy_closure(remote.target, system, substitute_on_destination=substitute_on_destination)
        return
    with (
        Progress(
            TextColumn("copying"),
            BarColumn(),
            TextColumn("{task.fields[copied]}/{task.fields[count]} paths"),
            DownloadColumn(),
            console=console,
            transient=True,
        ) as progress,
        ThreadPoolExecutor(max_workers=1) as worker,
    ):
        # The copy does not wait for the sizes: the bar gets its totals when they are known. Paths the copy
        # has already sent may count as present there, so the summary counts what the copy reported.
        task = progress.add_task("copy", total=None, copied=0, count="?")
        sizes: dict[str, int] = {}
        started: list[str] = []

        def show_progress() -> None:
            finished = started[:-1]  # a path is done when the next one starts
            progress.update(task, completed=sum(sizes.get(p, 0) for p in finished), copied=len(finished))

        def measure() -> None:
            closure = nix.closure(system)
            sizes.update((path.path, path.nar_size) for path in closure)
            with suppress(DjdeployError):  # the bar then has no totals; the copy goes on
                missing = lacking(remote, closure)
                progress.update(task, total=sum(p.nar_size for p in missing), count=len(missing))
            show_progress()

        def on_path(path: str) -> None:
            started.append(path)
            show_progress()

        measured = worker.submit(measure)
        nix.copy_closure(
            remote.target,
            system,
            on_path=on_path,
            substitute_on_destination=substitute_on_destination,
        )
        with suppress(DjdeployError):
            measured.result()
    total = sum(sizes.get(path, 0) for path in started)
    console.print(f"  copied {len(started)} paths, {total / 1e6:.1f} MB")


def missing_paths(remote: Remote, system: Path) -> list[nix.StorePath]:
    """The paths of the system's closure that the host does not have."""
    return lacking(remote, nix.closure(system))


def lacking(remote: Remote, paths: list[nix.StorePath]) -> list[nix.StorePath]:
    """Those of paths that the host does not have."""
    invalid = remote.run_shell(
        "xargs -r nix-store --check-validity --print-invalid", input_text="\n".join(p.path for p in paths)
    ).stdout.split()
    wanted = set(invalid)
    return [path for path in paths if path.path in wanted]
