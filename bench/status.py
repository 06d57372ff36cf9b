"""Wall time of `djdeploy status` on 1 and on 8 lab hosts with the example site (targets: 8 hosts at most
1.3 x 1 host warm, 2 x cold).

Run as root: python3 -m bench.status [--runs N]. Boots lab1..lab8 with the example site deployed, then
times, for each host count, the first run after the deploy (which left each site's migration plan on its
host), a cold run (the hosts' cached migration plans removed first, as a change of the database does: each
host asks its database again, against the list of its release's migration files that the deploy left) and N
warm runs, both of the `djdeploy` command beside this Python and of the query alone (in this process,
without Python's start-up), and prints medians with their range. The lab's hosts share this machine's CPUs,
so it prints how busy other work keeps them too, and the CPU time a query costs the hosts and this process:
divided by the cores, the floor under its wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.deploy import CORES, deployer_cpu_seconds, hosts_cpu_seconds
from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.ops import status
from djdeploy.remote.ssh import Remote
from tests.lab.deployed import deployed_lab

HOST_COUNTS = (1, 8)


def busy_cores(seconds: float = 2.0) -> float:
    """How many CPUs other processes keep busy while this one sleeps."""

    def busy() -> float:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")

    before = busy()
    time.sleep(seconds)
    return (busy() - before) / seconds


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def cpu_of(action: Callable[[], object], layout: LabLayout, count: int) -> tuple[float, float]:
    """CPU seconds action costs lab1..lab<count> and this process."""
    numbers = range(1, count + 1)
    hosts_before, deployer_before = hosts_cpu_seconds(layout, numbers), deployer_cpu_seconds()
    action()
    return hosts_cpu_seconds(layout, numbers) - hosts_before, deployer_cpu_seconds() - deployer_before


def forget_migration_plans(hosts: list[inventory.Host]) -> None:
    for host in hosts:
        with Remote(host.ssh_target) as remote:
            remote.run(["rm", "-rf", status.MIGRATIONS_CACHE])


def _range(values: list[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="warm runs per host count (default 5)")
    options = parser.parse_args()
    layout = LabLayout.from_environment()
    with deployed_lab(max(HOST_COUNTS)) as lab:
        environment = {**os.environ, "DJDEPLOY_INVENTORY": str(lab.path)}
        print(f"CPUs of this machine: {os.cpu_count()}; busy with other work: {busy_cores():.1f}")
        results: dict[int, tuple[float, float, float, float]] = {}
        for count in HOST_COUNTS:
            hosts = list(lab.hosts.values())[:count]
            names = ",".join(host.name for host in hosts)

            def command_line(names: str = names) -> None:
                argv = [str(Path(sys.executable).parent / "djdeploy"), "status", "--host", names]
                subprocess.run(argv, env=environment, stdout=subprocess.DEVNULL, check=True)

            def query(hosts: list[inventory.Host] = hosts) -> None:
                rows = status.query(hosts)
                assert all(row.reachable and not row.error for row in rows), rows

            after_deploy = timed(command_line)
            forget_migration_plans(hosts)
            cold = timed(command_line)
            warm_runs = [timed(command_line) for _ in range(options.runs)]
            alone_runs = [timed(query) for _ in range(options.runs)]
            warm, alone = statistics.median(warm_runs), statistics.median(alone_runs)
            costs = [cpu_of(query, layout, count) for _ in range(options.runs)]
            hosts_cpu = statistics.median(hosts for hosts, _ in costs)
            deployer_cpu = statistics.median(deployer for _, deployer in costs)
            results[count] = (after_deploy, cold, warm, alone)
            print(
                f"djdeploy status, {count} host(s): first after the deploy {after_deploy:.2f} s, "
                f"cold {cold:.2f} s, warm {warm:.2f} s (median of {options.runs}, {_range(warm_runs)}); "
                f"the query alone {alone:.2f} s ({_range(alone_runs)}), CPU time of a query: hosts "
                f"{hosts_cpu:.2f} s, this process {deployer_cpu:.2f} s, floor on {CORES} cores "
                f"{(hosts_cpu + deployer_cpu) / CORES:.2f} s"
            )
        one, many = results[1], results[max(HOST_COUNTS)]
        print(
            f"{max(HOST_COUNTS)} hosts / 1 host: first after the deploy {many[0] / one[0]:.2f}, "
            f"cold {many[1] / one[1]:.2f} (target 2), warm {many[2] / one[2]:.2f} (target 1.3), "
            f"query alone {many[3] / one[3]:.2f}"
        )


if __name__ == "__main__":
    main()
