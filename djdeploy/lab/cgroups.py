"""A control group per lab host, so that each container's systemd has a tree of its own.

Without one, every container's systemd would manage the same unit cgroups (caddy.service and so on) and
stopping a unit in one host would kill it in all; and processes of a host whose nspawn died could not be
found to be killed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
# cgroup v1 keeps systemd's tree in its named hierarchy; cgroup v2 has one unified tree.
HIERARCHIES = ("systemd", "unified", "")


def _trees(name: str) -> list[Path]:
    trees = []
    for hierarchy in HIERARCHIES:
        base = ROOT / hierarchy if hierarchy else ROOT
        if (base / "cgroup.procs").exists():
            trees.append(base / name)
    return trees


def create(name: str) -> list[Path]:
    """Make the host's cgroup in every hierarchy; return the cgroup.procs files to join it through."""
    joins = []
    for tree in _trees(name):
        tree.mkdir(exist_ok=True)
        joins.append(tree / "cgroup.procs")
    return joins


def join_then_exec(procs_files: list[Path]) -> list[str]:
    """A command prefix that moves itself into the host's cgroups, then runs the rest of the command line."""
    moves = "".join(f"echo $$ > {shlex.quote(str(procs))}; " for procs in procs_files)
    return ["/bin/sh", "-c", moves + 'exec "$@"', "join-cgroup"]


def pids(name: str) -> set[int]:
    found: set[int] = set()
    for tree in _trees(name):
        if not tree.exists():
            continue
        for procs in tree.rglob("cgroup.procs"):
            try:
                found |= {int(pid) for pid in procs.read_text().split()}
            except OSError:
                continue
    return found


def kill_and_remove(name: str, timeout: float = 10.0) -> None:
    """Kill every process left in the host's cgroups, then remove them."""
    # cgroup.kill (cgroup v2) kills the whole tree at once, as a power cut does: no process of the host sees
    # another die first and acts on it (the supervisor rolling back a migration it saw killed, say).
    for tree in _trees(name):
        if (tree / "cgroup.kill").exists():
            (tree / "cgroup.kill").write_text("1\n")
    deadline = time.monotonic() + timeout
    while (remaining := pids(name)) and time.monotonic() < deadline:
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for tree in _trees(name):
        if tree.exists():
            for directory in sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                directory.rmdir()
            tree.rmdir()


def cpu_seconds(name: str) -> float | None:
    """CPU time used by every process of the host so far, from the cgroup v2 tree (None without one)."""
    for tree in _trees(name):
        stat = tree / "cpu.stat"
        if stat.exists():
            for line in stat.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
    return None
