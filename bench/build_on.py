"""Where the build runs (`build.on`): a one-line change built here, on the target, and on a build host.

Run as root: python3 -m bench.build_on. It brings up 3 lab hosts and takes them down at the end. lab1 and
lab2 get a first release built here, so that both hold the site's dependencies as a server in use does;
then, for several rounds, a new release of the example site (one changed line) is deployed to lab1, built
here, on lab1 itself, and on lab2 as a build host. Prints for each the wall time of the whole deploy and the
bytes that left this machine for the lab hosts (the transmit counters of this machine's ends of the hosts'
links; a build host copies to its targets over the lab's LAN, which does not pass through this machine):
every round, the median and the spread (lowest to highest).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.deploy import QUIET, Workspace, timed_deploy
from djdeploy.inventory import Inventory
from djdeploy.lab import control
from djdeploy.lab.layout import LabLayout
from djdeploy.tasks.deploy import building_on

ROUNDS = 5
HOSTS = 3
PLACES = {"here": "local", "on the target (lab1)": "target", "on a build host (lab2)": "lab2"}


def sent_bytes(layout: LabLayout) -> int:
    """Bytes this machine has sent into the lab's hosts' links so far."""
    return sum(
        int(Path(f"/sys/class/net/{layout.host(index).host_link}/statistics/tx_bytes").read_text())
        for index in range(1, HOSTS + 1)
    )


def deploy_lab1(layout: LabLayout, release: Inventory, build_on: str) -> tuple[float, int]:
    [lab1] = building_on(build_on, [release.hosts["lab1"]], release)
    before = sent_bytes(layout)
    seconds, _ = timed_deploy([lab1])
    return seconds, sent_bytes(layout) - before


def run(layout: LabLayout, workspace: Workspace) -> None:
    first = workspace.release("first")
    timed_deploy([first.hosts["lab1"], first.hosts["lab2"]])
    measured: dict[str, list[tuple[float, int]]] = {label: [] for label in PLACES}
    for number in range(1, ROUNDS + 1):
        # The order changes every round: no place always follows the same one.
        labels = list(PLACES)[number % len(PLACES) :] + list(PLACES)[: number % len(PLACES)]
        for label in labels:
            release = workspace.release(f"r{number}-{PLACES[label]}")
            measured[label].append(deploy_lab1(layout, release, PLACES[label]))
    print(f"a one-line change deployed to lab1, {ROUNDS} rounds (seconds, MB sent by this machine):")
    for label, runs in measured.items():
        seconds = [run[0] for run in runs]
        megabytes = [run[1] / 1e6 for run in runs]
        print(
            f"  built {label}: wall median {statistics.median(seconds):.2f} s "
            f"(spread {min(seconds):.2f} to {max(seconds):.2f}); sent median "
            f"{statistics.median(megabytes):.2f} MB (spread {min(megabytes):.2f} to {max(megabytes):.2f}); "
            f"each run {', '.join(f'{s:.2f} s/{m:.2f} MB' for s, m in zip(seconds, megabytes, strict=True))}"
        )


def main() -> None:
    layout = LabLayout.from_environment()
    control.down(layout, QUIET)
    control.up(layout, HOSTS, QUIET)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            run(layout, Workspace(layout, Path(scratch)))
    finally:
        control.down(layout, QUIET)
    print(f"(the benchmark took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
