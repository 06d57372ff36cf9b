"""Deploy benchmark on the lab: step times, djdeploy against bare commands, failed requests, fleet sizes.

Run as root: python3 -m bench.deploy [--change-only]. It brings up 4 lab hosts and takes them down at the
end. Prints:
- the wall time of each step of a first deploy (its systems built and read once beforehand, for both
  sides of the comparison), an unchanged redeploy and a one-line change (lab1);
- the same work done with bare commands (nix-build, nix copy, ssh ... switch-to-configuration) on lab2, and
  the ratio of djdeploy's wall time to theirs (the one-line change five times: each ratio, their median and
  the ratio of the medians), and each side's switch apart from the rest: the switch takes 1 to 2 s by
  itself (gunicorn's gevent worker notices SIGTERM at its one-second tick); what lies outside it is the
  tool's. The switch is also timed on the host itself, on both sides (djdeploy's from the supervisor's
  files: `generation` written just before switch-to-configuration starts, `deadline` just after it ends;
  the bare side's by `date` around it), so that the tick stays inside the switch and what the deployer
  takes to notice the switch's end counts as outside it;
- failed HTTPS requests out of a steady load on lab1 while a changed site is deployed to it;
- the wall time of deploying a changed site to 1, 2 and 4 hosts, five times each, with the CPU time the
  deployer and the lab hosts used: the lab hosts share this machine's cores, so the CPU time divided by the
  cores is the shortest wall time the machine allows.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from rich.console import Console

from djdeploy import inventory
from djdeploy.deploy import build, fleet, nix
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Result
from djdeploy.host import paths as host_paths
from djdeploy.lab import cgroups, control
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe, process
from djdeploy.remote.ssh import Remote

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 5
SWITCH_STEP = "set the profile and switch (switch-to-configuration test)"
FLEET_SIZES = (1, 2, 4)
CORES = len(os.sched_getaffinity(0))
QUIET = Console(file=io.StringIO())


class Workspace:
    """Releases of the example site and inventories that deploy them to lab hosts."""

    def __init__(self, layout: LabLayout, directory: Path) -> None:
        self.layout = layout
        self.directory = directory
        self.token = str(int(time.time()))

    def release(self, name: str) -> inventory.Inventory:
        # A token of this run in every release: nothing is already built from an earlier run.
        name = f"{name}+{self.token}"
        source = self.directory / f"example-{name}"
        shutil.copytree(REPO / "example", source, ignore=shutil.ignore_patterns("__pycache__"))
        module = source / "example_site" / "release.py"
        module.write_text(module.read_text().replace('RELEASE = "1.0.0"', f'RELEASE = "{name}"'))
        systems = self.directory / f"{name}.nix"
        systems.write_text(f"import {REPO}/nix/lab/hosts.nix {{ exampleSource = {source}; }}\n")
        lab_inventory = yaml.safe_load(self.layout.inventory.read_text())
        for host_name, host in lab_inventory["hosts"].items():
            host["build"] = {"file": str(systems), "attribute": host_name}
        path = self.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(lab_inventory))
        return inventory.load(path)


def timed_deploy(hosts: Sequence[inventory.Host]) -> tuple[float, list[Result]]:
    started = time.monotonic()
    results = fleet.deploy(hosts, Options(), QUIET)
    seconds = time.monotonic() - started
    failed = [result for result in results if not result.ok]
    if failed:
        raise SystemExit(f"deploy failed: {failed[0].message}")
    return seconds, results


def print_steps(label: str, seconds: float, result: Result) -> None:
    steps = ", ".join(f"{name} {duration:.2f} s" for name, duration in result.steps)
    print(f"{label}: {seconds:.2f} s ({steps})")


def bare_deploy(host: inventory.Host, systems: Path) -> dict[str, float]:
    """The same work with bare commands: build, copy, set the profile and switch over plain ssh."""
    target = host.ssh_target
    ssh = ["ssh", *nix.ssh_options(target), f"{target.ssh.user}@{target.address}"]
    times = {}
    started = time.monotonic()
    system = bare_build(host, systems)
    times["nix-build"] = time.monotonic() - started
    mark = time.monotonic()
    nix.copy_closure(target, system)
    times["nix copy"] = time.monotonic() - mark
    mark = time.monotonic()
    profile = "/nix/var/nix/profiles/system"
    command = (
        f"nix-env -p {profile} --set {system} && date +%s.%N && {system}/bin/switch-to-configuration switch "
        ">&2 && date +%s.%N"
    )
    began, ended = process.output([*ssh, command]).split()
    times["ssh switch"] = time.monotonic() - mark
    times["switch on the host"] = float(ended) - float(began)
    times["total"] = time.monotonic() - started
    return times


def host_switch_seconds(host: inventory.Host) -> float:
    """How long the newest activation's switch-to-configuration took, from the supervisor's files."""
    with Remote(host.ssh_target) as remote:
        newest = remote.run_shell(
            f"cd {host_paths.ACTIVATION_DIR}/$(ls {host_paths.ACTIVATION_DIR} | tail -n 1) && "
            "stat -c %.9Y generation deadline"
        ).stdout.split()
    return float(newest[1]) - float(newest[0])


def bare_build(host: inventory.Host, systems: Path) -> Path:
    options = [word for name, value in host.build.nix_options for word in ("--option", name, value)]
    argv = ["nix-build", str(systems), "-A", host.name, "--no-out-link", *options]
    return Path(process.output(argv))


def failed_requests_during(host: inventory.Host, action: threading.Thread) -> tuple[int, int]:
    """(failed, total) HTTPS requests of a steady load on the host while action runs.

    Bounded: at most 3000 requests and 300 s.
    """
    stop = threading.Event()
    counts = {"total": 0, "failed": 0}
    lock = threading.Lock()

    def load() -> None:
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline and counts["total"] < 3000:
            try:
                ok = (
                    probe.request(host.address, "example.lab", "/healthz", verify=False, timeout=10).status
                    == 200
                )
            except (OSError, ssl.SSLError):
                ok = False
            with lock:
                counts["total"] += 1
                counts["failed"] += 0 if ok else 1
            time.sleep(0.02)

    workers = [threading.Thread(target=load) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(1)
    action.start()
    action.join()
    time.sleep(1)
    stop.set()
    for worker in workers:
        worker.join()
    return counts["failed"], counts["total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--change-only", action="store_true", help="only the one-line change against the bare commands"
    )
    change_only = parser.parse_args().change_only
    layout = LabLayout.from_environment()
    control.down(layout, QUIET)
    control.up(layout, 4, QUIET)
    settled = wait_until_idle(layout, 4)
    print(f"lab hosts idle after boot: {settled}")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            workspace = Workspace(layout, Path(scratch))
            if change_only:  # from a first deploy of each side, which is not timed
                first = workspace.release("1.0.0")
                lab1, lab2 = first.hosts["lab1"], first.hosts["lab2"]
                warm_up([lab1, lab2])
                timed_deploy([lab1])
                bare_deploy(lab2, Path(str(lab2.build.file)))
                compare_one_line_change(workspace)
            else:
                run(workspace)
    finally:
        control.down(layout, QUIET)


def hosts_cpu_seconds(layout: LabLayout, numbers: Sequence[int]) -> float:
    """CPU time the lab hosts of these numbers have used so far, every process of each."""
    return sum(cgroups.cpu_seconds(layout.host(number).netns) or 0.0 for number in numbers)


def deployer_cpu_seconds() -> float:
    """CPU time this process and its finished children have used so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def wait_until_idle(layout: LabLayout, count: int, limit: float = 60.0) -> str:
    """Wait (at most limit seconds) until freshly booted hosts together use under 5 % of a core."""
    numbers = range(1, count + 1)
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = hosts_cpu_seconds(layout, numbers)
        time.sleep(1)
        if hosts_cpu_seconds(layout, numbers) - before < 0.05:
            return f"yes, after {time.monotonic() - started:.0f} s"
    return f"no, still busy after {limit:.0f} s"


def warm_up(hosts: Sequence[inventory.Host]) -> None:
    """Build the first systems and read their closures once: the first of the two first deploys compared
    would otherwise pay alone for the build and for reading some 60 MB from a cold page cache."""
    for built in build.build_systems(hosts).values():
        paths = process.output(["nix-store", "--query", "--requisites", str(built.path)]).split()
        subprocess.run(["nix-store", "--export", *paths], stdout=subprocess.DEVNULL, check=True)


def run(workspace: Workspace) -> None:
    first = workspace.release("1.0.0")
    lab1, lab2 = first.hosts["lab1"], first.hosts["lab2"]
    warm_up([lab1, lab2])
    seconds, [result] = timed_deploy([lab1])
    print_steps("first deploy (djdeploy, lab1)", seconds, result)
    bare = bare_deploy(lab2, Path(str(lab2.build.file)))
    print(f"first deploy (bare commands, lab2): {bare['total']:.2f} s ({_steps(bare)})")
    print(f"  ratio djdeploy / bare: {seconds / bare['total']:.2f}")

    seconds, [result] = timed_deploy([lab1])
    print_steps("unchanged redeploy (djdeploy, lab1)", seconds, result)
    started = time.monotonic()
    bare_build(lab1, Path(str(lab1.build.file)))
    with Remote(lab1.ssh_target) as remote:
        remote.run(["readlink", "-f", "/run/current-system"])
    print(f"unchanged redeploy (bare: nix-build and compare over ssh): {time.monotonic() - started:.2f} s")

    compare_one_line_change(workspace)

    under_load = workspace.release("1.1.0")
    deployment = threading.Thread(target=lambda: timed_deploy([under_load.hosts["lab1"]]))
    failed, total = failed_requests_during(lab1, deployment)
    print(f"failed requests during the deploy of a changed site: {failed} of {total}")

    # Every host starts from the same release, so each fleet deploy copies only the changed code.
    timed_deploy([first.hosts["lab3"], first.hosts["lab4"]])
    common = workspace.release("1.2.0")
    timed_deploy([common.hosts[f"lab{index}"] for index in range(1, 5)])
    walls: dict[int, list[float]] = {count: [] for count in FLEET_SIZES}
    for run_number in range(1, ROUNDS + 1):
        figures = []
        for count in FLEET_SIZES:
            fleet = workspace.release(f"1.3.{run_number}-{count}")
            hosts = [fleet.hosts[f"lab{index}"] for index in range(1, count + 1)]
            seconds, deployer_cpu, hosts_cpu, _ = measured_deploy(workspace.layout, hosts)
            walls[count].append(seconds)
            floor = (deployer_cpu + hosts_cpu) / CORES
            figures.append(
                f"{count} host{'s' if count > 1 else ''} {seconds:.2f} s (CPU: deployer "
                f"{deployer_cpu:.2f} s, hosts {hosts_cpu:.2f} s; floor on {CORES} cores {floor:.2f} s)"
            )
        print(f"deploy of a changed site #{run_number}: " + "; ".join(figures))
    one = statistics.median(walls[1])
    for count in FLEET_SIZES[1:]:
        ratios = [many / single for many, single in zip(walls[count], walls[1], strict=True)]
        print(
            f"  {count} hosts / 1 host: median wall {statistics.median(walls[count]):.2f} s / {one:.2f} s = "
            f"{statistics.median(walls[count]) / one:.2f}; each run {_list(ratios)}"
        )


def compare_one_line_change(workspace: Workspace) -> None:
    """A one-line change, ROUNDS times: djdeploy on lab1 against the bare commands on lab2."""
    # Single runs on a 2-core machine shared with the lab are noisy: repeat, print each run and the medians.
    djdeploy_times, bare_times = [], []
    djdeploy_switches, bare_switches, djdeploy_builds, bare_builds = [], [], [], []
    djdeploy_host_switches, bare_host_switches = [], []
    for run_number in range(1, ROUNDS + 1):
        change = workspace.release(f"1.0.{run_number}")
        seconds, [result] = timed_deploy([change.hosts["lab1"]])
        print_steps(f"one-line change #{run_number} (djdeploy, lab1)", seconds, result)
        bare_change = workspace.release(f"1.0.{run_number}-bare").hosts["lab2"]
        bare = bare_deploy(bare_change, Path(str(bare_change.build.file)))
        print(f"one-line change #{run_number} (bare commands, lab2): {bare['total']:.2f} s ({_steps(bare)})")
        djdeploy_times.append(seconds)
        bare_times.append(bare["total"])
        steps = dict(result.steps)
        djdeploy_switches.append(steps[SWITCH_STEP])
        djdeploy_host_switches.append(host_switch_seconds(change.hosts["lab1"]))
        bare_host_switches.append(bare["switch on the host"])
        djdeploy_builds.append(steps["build"])
        bare_switches.append(bare["ssh switch"])
        bare_builds.append(bare["nix-build"])
    ratios = [mine / theirs for mine, theirs in zip(djdeploy_times, bare_times, strict=True)]
    print(
        f"  ratio djdeploy / bare: each run {_list(ratios)}; median {statistics.median(ratios):.2f}; "
        f"ratio of the medians {statistics.median(djdeploy_times):.2f} s / "
        f"{statistics.median(bare_times):.2f} s = "
        f"{statistics.median(djdeploy_times) / statistics.median(bare_times):.2f}"
    )
    # The build of the changed site is the same nix-build on both sides: left out of what is the tool's own.
    for side, totals, switches, builds in (
        ("djdeploy", djdeploy_times, djdeploy_switches, djdeploy_builds),
        ("bare commands (their switch: the whole ssh command)", bare_times, bare_switches, bare_builds),
    ):
        outside = [
            total - switch - built for total, switch, built in zip(totals, switches, builds, strict=True)
        ]
        print(f"  {side}: switch {_spread(switches)}; outside the switch and the build {_spread(outside)}")
    # The switch as the host timed it: what the deployer takes to learn that it ended is outside it.
    for side, totals, switches, builds in (
        ("djdeploy", djdeploy_times, djdeploy_host_switches, djdeploy_builds),
        ("bare commands", bare_times, bare_host_switches, bare_builds),
    ):
        outside = [
            total - switch - built for total, switch, built in zip(totals, switches, builds, strict=True)
        ]
        print(
            f"  {side}, switch timed on the host: switch {_spread(switches)}; outside the switch and the "
            f"build {_spread(outside)}"
        )


def measured_deploy(
    layout: LabLayout, hosts: Sequence[inventory.Host]
) -> tuple[float, float, float, list[Result]]:
    """Wall time of a deploy, the CPU seconds this process (with its children) and the hosts used, and the
    hosts' results."""
    numbers = [int(host.name.removeprefix("lab")) for host in hosts]
    deployer_before = deployer_cpu_seconds()
    hosts_before = hosts_cpu_seconds(layout, numbers)
    seconds, results = timed_deploy(hosts)
    hosts_cpu = hosts_cpu_seconds(layout, numbers) - hosts_before
    return seconds, deployer_cpu_seconds() - deployer_before, hosts_cpu, results


def _spread(values: list[float]) -> str:
    """Median and range over the rounds."""
    return (
        f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, "
        f"{len(values)} rounds)"
    )


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _steps(times: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items() if name != "total")


if __name__ == "__main__":
    main()
