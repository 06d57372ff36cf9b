"""Fleet benchmark on the lab: deploys to 1, 4 and 8 hosts, through the lab's binary cache and without it.

Run as root: python3 -m bench.fleet [ROUNDS [SIZES]] (SIZES: 1,4,8 unless given, e.g. 1,8). For each
fleet size and each way (direct copy, cache) it boots a fresh lab of that many hosts (lab.up, with --cache
for the cache), then times a first deploy and ROUNDS (default 3) one-line changes of the example site, each
release built beforehand so that only the deploy is timed. For each deploy it prints:
- the wall time, and the CPU time the deployer (this process, its children and the lab's Caddy) and the lab
  hosts used: the hosts share this machine's cores, so that CPU time divided by the cores is the floor;
- the bytes this machine sent to the run's hosts, from the host-side veths' counters
  (/sys/class/net/<veth>/statistics/tx_bytes), and, with the cache, the part of them that Caddy served
  (HTTP bodies, from its access log) and the bytes the push added to the cache's store (files named by
  their content: a NAR the store already holds is not counted again). The lab's cache runs on
  this machine, so its traffic crosses the same veths: what leaves the deployer itself is the rest (SSH, and
  the TCP/IP headers of both), plus the push, which a cache on another machine would receive once;
- the load average before the deploy (the machine is shared).
Then the medians and spreads, and the ratios of 4 and 8 hosts to 1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.deploy import CORES, Workspace, measured_deploy, wait_until_idle
from djdeploy import inventory
from djdeploy.deploy import build
from djdeploy.lab import binary_cache, control
from djdeploy.lab.layout import LabLayout

FLEET_SIZES = (1, 4, 8)
WAYS = ("direct", "cache")
QUIET = Console(file=io.StringIO())
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figures:
    """One measured deploy."""

    wall: float
    floor: float
    veth_bytes: int
    cache_bytes: int
    pushed_bytes: int
    load: float
    # The steps of the host whose steps took longest.
    slowest_steps: str

    @property
    def deployer_bytes(self) -> int:
        """What leaves the deployer itself: the veths' bytes less the cache's, plus the push."""
        return self.veth_bytes - self.cache_bytes + self.pushed_bytes


def veth_tx_bytes(layout: LabLayout, count: int) -> int:
    return sum(
        int(Path(f"/sys/class/net/{layout.host(index).host_link}/statistics/tx_bytes").read_text())
        for index in range(1, count + 1)
    )


def cache_served_bytes(layout: LabLayout) -> int:
    log = binary_cache.access_log(layout)
    if not log.exists():
        return 0
    return sum(int(json.loads(line).get("size", 0)) for line in log.read_text().splitlines() if line)


def store_bytes(layout: LabLayout) -> int:
    store = binary_cache.store(layout)
    return sum(path.stat().st_size for path in store.rglob("*") if path.is_file()) if store.exists() else 0


def caddy_cpu_seconds(layout: LabLayout) -> float:
    """CPU time of the lab's Caddy (not a child this process waits for, so not in its rusage)."""
    pid_file = binary_cache.directory(layout) / "caddy.pid"
    try:
        fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(layout: LabLayout, hosts: Sequence[inventory.Host]) -> Figures:
    build.build_systems(hosts)  # built beforehand: the deploy alone is timed
    count = len(hosts)
    load = os.getloadavg()[0]
    veth, served, stored, caddy = (
        veth_tx_bytes(layout, count),
        cache_served_bytes(layout),
        store_bytes(layout),
        caddy_cpu_seconds(layout),
    )
    seconds, deployer_cpu, hosts_cpu, results = measured_deploy(layout, hosts)
    cpu = deployer_cpu + hosts_cpu + caddy_cpu_seconds(layout) - caddy
    slowest = max(results, key=lambda result: sum(duration for _, duration in result.steps))
    return Figures(
        slowest_steps=", ".join(f"{name} {duration:.2f} s" for name, duration in slowest.steps),
        wall=seconds,
        floor=cpu / CORES,
        veth_bytes=veth_tx_bytes(layout, count) - veth,
        cache_bytes=cache_served_bytes(layout) - served,
        pushed_bytes=store_bytes(layout) - stored,
        load=load,
    )


def describe(figures: Figures) -> str:
    text = f"{figures.wall:.2f} s (floor {figures.floor:.2f} s), veths {_mb(figures.veth_bytes)}"
    if figures.cache_bytes or figures.pushed_bytes:
        text += f" of which cache {_mb(figures.cache_bytes)}, pushed {_mb(figures.pushed_bytes)}"
    text += f", deployer {_mb(figures.deployer_bytes)}; load {figures.load:.2f}"
    return text + f"\n    slowest host: {figures.slowest_steps}"


def run_way(layout: LabLayout, way: str, count: int, rounds: int, scratch: Path) -> dict[str, list[Figures]]:
    control.down(layout, QUIET)
    control.up(layout, count, QUIET, with_cache=way == "cache")
    print(f"[{way}, {count} hosts] lab hosts idle after boot: {wait_until_idle(layout, count)}", flush=True)
    workspace = Workspace(layout, scratch)

    def hosts_of(release: str) -> list[inventory.Host]:
        released = workspace.release(f"{release}-{way}-{count}")
        chosen = [released.hosts[f"lab{index}"] for index in range(1, count + 1)]
        return chosen if way == "cache" else [dataclasses.replace(host, cache=None) for host in chosen]

    first = measure(layout, hosts_of("2.0.0"))
    print(f"[{way}, {count} hosts] first deploy: {describe(first)}", flush=True)
    changes = []
    for number in range(1, rounds + 1):
        changes.append(measure(layout, hosts_of(f"2.0.{number}")))
        print(f"[{way}, {count} hosts] one-line change #{number}: {describe(changes[-1])}", flush=True)
    return {"first deploy": [first], "one-line change": changes}


def summary(values: list[float], unit: str) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}{unit}"
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sizes = tuple(int(size) for size in sys.argv[2].split(",")) if len(sys.argv) > 2 else FLEET_SIZES
    layout = LabLayout.from_environment()
    results: dict[tuple[str, int], dict[str, list[Figures]]] = {}
    print(f"{CORES} cores; load at start {os.getloadavg()}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            # Each size with both ways in turn: the machine's load drifts less between the two.
            for count in sizes:
                for way in WAYS:
                    results[(way, count)] = run_way(layout, way, count, rounds, Path(scratch))
    finally:
        control.down(layout, QUIET)
    print(f"load at end {os.getloadavg()}")
    print("\nmedian (min-max) over the deploys of each row; MB are 10^6 bytes")
    print(
        "way    | deploy          | hosts | wall s             | floor s            | veths MB           "
        "| deployer MB        | load"
    )
    for (way, count), kinds in sorted(results.items()):
        for kind, deploys in kinds.items():
            columns = [
                summary([d.wall for d in deploys], ""),
                summary([d.floor for d in deploys], ""),
                summary([d.veth_bytes / 1e6 for d in deploys], ""),
                summary([d.deployer_bytes / 1e6 for d in deploys], ""),
                summary([d.load for d in deploys], ""),
            ]
            print(f"{way:6} | {kind:15} | {count:5} | " + " | ".join(f"{c:18}" for c in columns))
    for way in WAYS:
        for kind in ("first deploy", "one-line change"):
            if (way, 1) not in results:
                break
            one = results[(way, 1)][kind]
            for count in sizes[1:]:
                many = results[(way, count)][kind]
                wall = _median([d.wall for d in many]) / _median([d.wall for d in one])
                sent = _median([d.deployer_bytes for d in many]) / _median([d.deployer_bytes for d in one])
                print(f"{way}, {kind}: {count} hosts / 1 host: wall {wall:.2f}, deployer bytes {sent:.2f}")


def _median(values: list[float] | list[int]) -> float:
    return float(statistics.median(values))


def _mb(count: int) -> str:
    return f"{count / 1e6:.2f} MB"


if __name__ == "__main__":
    main()
