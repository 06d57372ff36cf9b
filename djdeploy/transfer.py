"""Copying a system's closure to a host: what it lacks, and a progress bar of paths and bytes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn

from djdeploy import nix
from djdeploy.inventory import Host
from djdeploy.ssh import Remote


def copy_with_progress(
    remote: Remote, host: Host, system: Path, substitute_on_destination: bool, console: Console, *, show: bool
) -> None:
    missing = missing_paths(remote, system)
    total = sum(path.nar_size for path in missing)
    if not show or not missing:
        nix.copy_closure(host.ssh_target, system, substitute_on_destination=substitute_on_destination)
        return
    sizes = {path.path: path.nar_size for path in missing}
    with Progress(
        TextColumn("copying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("paths"),
        DownloadColumn(),
        console=console,
        transient=True,
    ) as progress:
        paths_task = progress.add_task("paths", total=len(missing))
        bytes_task = progress.add_task("bytes", total=total, visible=False)
        done: list[str] = []

        def on_path(path: str) -> None:
            if done:
                progress.advance(paths_task)
                progress.advance(bytes_task, sizes.get(done[-1], 0))
            done.append(path)

        nix.copy_closure(
            host.ssh_target,
            system,
            on_path=on_path,
            substitute_on_destination=substitute_on_destination,
        )
    console.print(f"  copied {len(missing)} paths, {total / 1e6:.1f} MB")


def missing_paths(remote: Remote, system: Path) -> list[nix.StorePath]:
    """The paths of the system's closure that the host does not have."""
    paths = nix.closure(system)
    invalid = remote.run_shell(
        "xargs -r nix-store --check-validity --print-invalid", input_text="\n".join(p.path for p in paths)
    ).stdout.split()
    wanted = set(invalid)
    return [path for path in paths if path.path in wanted]
