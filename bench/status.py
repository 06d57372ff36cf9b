"""Wall time of `inv status` on 1 and on 4 lab hosts with the example site (target: 4 hosts < 1.5 x 1 host).

Run as root: python3 -m bench.status [--runs N]. Boots lab1..lab4 with the example site deployed, then
times, for each host count, a cold run (the hosts' cached migration plans removed first) and N warm runs,
both of the `inv` command line and of the query alone (in this process, without Python's start-up), and
prints medians. The lab's hosts share this machine's CPUs, so it prints how busy other work keeps them too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from djdeploy import inventory
from djdeploy.ops import status
from djdeploy.remote.ssh import Remote
from tests.lab.deployed import deployed_lab

HOST_COUNTS = (1, 4)


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


def forget_migration_plans(hosts: list[inventory.Host]) -> None:
    for host in hosts:
        with Remote(host.ssh_target) as remote:
            remote.run(["rm", "-rf", status.MIGRATIONS_CACHE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="warm runs per host count (default 5)")
    options = parser.parse_args()
    with deployed_lab(max(HOST_COUNTS)) as lab:
        environment = {**os.environ, "DJDEPLOY_INVENTORY": str(lab.path)}
        print(f"CPUs of this machine: {os.cpu_count()}; busy with other work: {busy_cores():.1f}")
        results: dict[int, tuple[float, float, float]] = {}
        for count in HOST_COUNTS:
            hosts = list(lab.hosts.values())[:count]
            names = ",".join(host.name for host in hosts)

            def command_line(names: str = names) -> None:
                argv = [sys.executable, "-m", "invoke", "status", "--host", names]
                subprocess.run(argv, env=environment, stdout=subprocess.DEVNULL, check=True)

            def query(hosts: list[inventory.Host] = hosts) -> None:
                rows = status.query(hosts)
                assert all(row.reachable and not row.error for row in rows), rows

            forget_migration_plans(hosts)
            cold = timed(command_line)
            warm = statistics.median(timed(command_line) for _ in range(options.runs))
            alone = statistics.median(timed(query) for _ in range(options.runs))
            results[count] = (cold, warm, alone)
            print(
                f"inv status, {count} host(s): cold {cold:.2f} s, warm {warm:.2f} s "
                f"(median of {options.runs}); the query alone {alone:.2f} s"
            )
        one, four = results[1], results[4]
        print(
            f"4 hosts / 1 host: cold {four[0] / one[0]:.2f}, warm {four[1] / one[1]:.2f}, "
            f"query alone {four[2] / one[2]:.2f} (target < 1.5)"
        )


if __name__ == "__main__":
    main()
