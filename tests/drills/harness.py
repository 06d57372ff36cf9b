"""Fault drills on lab hosts: faults a user causes (Ctrl-C, a killed deployer, a cut network, a second
deploy, a bad release, a power cut, a full disk, a bad host in a fleet) during a real `djdeploy deploy`, and
what the hosts and their records say afterwards.

Each drill returns a Row; its verdict holds when the host runs a working generation and serves, the deploy
exits non-zero whenever the new release is not what runs, the lock is free once the host decided, and the
deploy log got one line per deploy that took the lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from djdeploy import inventory
from djdeploy.host import lock
from djdeploy.host import paths as host_paths
from djdeploy.host import system as host_system
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import process
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, write_inventory
from tests.lab.test_deploy import deploy, page, release_source, said

# Bounds of every wait, in seconds.
PHASE_SECONDS = 300
DECIDE_SECONDS = 180
# How much of a deploy's output a row shows: the end of it.
SUMMARY_CHARACTERS = 150


@dataclass(frozen=True)
class Row:
    """What one drill left: the table's columns, and whether every promise held."""

    drill: str
    generation: str
    serving: str
    exit: str
    lock: str
    log: str
    problems: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return "pass" if not self.problems else "FAIL: " + "; ".join(self.problems)


@dataclass(frozen=True)
class HostAfter:
    """What one host says once a drill is over: its columns of the table, and the promises it broke."""

    generation: str
    serving: str
    lock: str
    log: str
    problems: tuple[str, ...]


@dataclass
class Lab:
    """The lab's hosts up, lab1 with its baseline release deployed; every drill starts from it."""

    layout: LabLayout
    workspace: Path
    baseline: Path = field(init=False)

    def __post_init__(self) -> None:
        self.baseline = write_inventory(self.layout, self.workspace, "drill-baseline")
        self.back_to_baseline()

    @property
    def host(self) -> inventory.Host:
        """lab1 as the drills' inventories have it (their timeouts)."""
        return inventory.load(self.baseline).hosts["lab1"]

    def host_of(self, number: int) -> inventory.Host:
        return self.host if number == 1 else inventory.load(self.layout.inventory).hosts[f"lab{number}"]

    def release(self, name: str, **system: str) -> Path:
        """An inventory deploying release `name` of the example site (a new build) to lab1."""
        arguments = {"exampleSource": str(release_source(self.workspace, name)), **system}
        return write_inventory(self.layout, self.workspace, f"drill-{name}", 1, **arguments)

    def fleet(self, name: str, systems: dict[int, dict[str, str]]) -> Path:
        """One inventory of several hosts: lab<number> runs the test system built with systems[number]."""
        hosts: dict[str, Any] = {}
        for number, arguments in systems.items():
            one = write_inventory(
                self.layout, self.workspace, f"drill-{name}-lab{number}", number, **arguments
            )
            fleet = yaml.safe_load(one.read_text())
            hosts.update(fleet["hosts"])
        path = self.workspace / f"drill-{name}.yaml"
        path.write_text(yaml.safe_dump({**fleet, "hosts": hosts}))
        return path

    def back_to_baseline(self) -> None:
        self.settle()
        with self.remote() as remote:
            if lock.read(remote) is not None:
                lock.release(remote)
        result = deploy(self.baseline)
        assert result.returncode == 0, said(result)

    @contextmanager
    def remote(self, number: int = 1) -> Iterator[Remote]:
        with Remote(self.host_of(number).ssh_target) as remote:
            yield remote

    def activations(self) -> set[str]:
        with self.remote() as remote:
            listing = remote.run_shell(f"ls {host_paths.ACTIVATION_DIR} 2>/dev/null; true").stdout
        return set(listing.split())

    def settle(self) -> None:
        """Wait (bounded) until no activation supervisor runs on the host: the host has decided."""
        deadline = time.monotonic() + DECIDE_SECONDS
        with self.remote() as remote:
            while time.monotonic() < deadline:
                units = remote.run_shell(
                    "systemctl list-units --no-legend --state=active,activating 'djdeploy-activate-*'; true"
                ).stdout
                if not units.strip():
                    return
                time.sleep(0.5)
        raise AssertionError(f"a supervisor still ran on lab1 {DECIDE_SECONDS} s later")

    def log_lines(self, number: int = 1) -> int:
        with self.remote(number) as remote:
            return len(remote.run(["cat", host_paths.DEPLOY_LOG], check=False).stdout.splitlines())

    def run(
        self,
        drill: str,
        fault: Callable[[Deployer], None],
        release: Path,
        *,
        expected_lines: int = 1,
        new_release: str = "",
        arguments: tuple[str, ...] = (),
    ) -> Row:
        """Deploy release (with arguments) with fault applied to the running deployer; then read what the
        host says."""
        before = self.log_lines()
        deployer = Deployer(self, release, *arguments)
        try:
            fault(deployer)
        finally:
            deployer.finish()
        self.settle()
        return self.observe(drill, deployer, before, expected_lines, new_release)

    def observe(self, drill: str, deployer: Deployer, before: int, lines: int, new_release: str) -> Row:
        after = self.after(1, before, lines)
        problems = list(after.problems)
        new_runs = bool(new_release) and after.serving == new_release
        if not new_runs and deployer.exit_code == 0:
            problems.append("exit code 0 though the new release does not run")
        return Row(
            drill=drill,
            generation=after.generation,
            serving=after.serving,
            exit=f"{deployer.exit_code}: {deployer.summary()}",
            lock=after.lock,
            log=after.log,
            problems=tuple(problems),
        )

    def after(self, number: int, before: int, lines: int) -> HostAfter:
        """What lab<number> says now, its deploy log having had `before` lines and `lines` more expected."""
        host = self.host_of(number)
        with self.remote(number) as remote:
            facts = host_system.facts(remote)
            numbers = {generation.system: generation.number for generation in host_system.generations(remote)}
            units = remote.run_shell(
                "systemctl is-active gunicorn-example.service caddy.service", check=False
            )
            last = remote.run_shell(f"tail -n 1 {host_paths.DEPLOY_LOG}").stdout
        served = page(host)
        release = served.split('id="release">', 1)[-1].split("<", 1)[0] if 'id="release">' in served else "?"
        added = self.log_lines(number) - before
        problems = []
        if not units.ok:
            problems.append(f"units not active: {units.stdout.split()}")
        if release == "?":
            problems.append("the site does not serve its page")
        if facts.lock is not None:
            problems.append(f"the lock is held: {facts.lock.describe()}")
        if added != lines:
            problems.append(f"{added} deploy-log line(s), expected {lines}")
        outcome = (added and _field(last, "outcome")) or "-"
        running = numbers.get(facts.current_system) if facts.current_system else None
        # After a reboot the host runs its boot default, which need not be the profile's newest generation.
        generation = f"{running}" if facts.runs_profile else f"{running} (profile: {facts.generation_number})"
        return HostAfter(
            generation=generation,
            serving=release,
            lock="held" if facts.lock else "free",
            log=f"{added} ({outcome})",
            problems=tuple(problems),
        )


def _field(line: str, name: str) -> str:
    try:
        return str(json.loads(line).get(name) or "")
    except ValueError:
        return ""


class Deployer:
    """`djdeploy deploy` of one release to lab1 in the background, its output read as it comes."""

    def __init__(self, lab: Lab, release: Path, *args: str) -> None:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # Started in the background by a shell, which ignores SIGINT for it: the deployer would inherit
            # that and never see the drills' Ctrl-C. A handler of ours becomes the default in the child.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.lab = lab
        self.known = lab.activations()
        self.output: list[str] = []
        self.child = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "--inventory", str(release), "--host", "lab1", *args],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.exit_code: int | None = None

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            self.output.append(line)

    def said(self, text: str) -> bool:
        """Whether the deploy printed text (its words; the error box wraps long lines)."""
        return " ".join(text.split()) in _words("".join(self.output))

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (bounded) until condition holds or the deployer has ended."""
        _until(lambda: condition() or self.child.poll() is not None, what)

    def wait_for_output(self, text: str) -> None:
        self.wait_until(lambda: self.said(text), f"output {text!r}")

    def state(self) -> str:
        """The state of this deploy's activation on the host ("" before it started)."""
        with self.lab.remote() as remote:
            listing = remote.run_shell(
                f"cd {host_paths.ACTIVATION_DIR} 2>/dev/null && for d in *; do "
                'printf "%s %s\\n" "$d" "$(cat "$d/state" 2>/dev/null)"; done; true'
            ).stdout
        states = [line.split() for line in listing.splitlines()]
        return next((words[1] for words in states if len(words) > 1 and words[0] not in self.known), "")

    def wait_for_state(self, *states: str) -> None:
        self.wait_until(lambda: self.state() in states, f"state {states}")

    def copying(self) -> bool:
        """Whether the deployer runs `nix copy` now."""
        return any(argv[0].endswith("nix") and "copy" in argv for argv in _children(self.child.pid))

    def signal(self, number: signal.Signals) -> None:
        """Send the deployer a signal, unless it has ended already."""
        if self.child.poll() is None:
            os.kill(self.child.pid, number)

    def kill_all(self) -> None:
        """SIGKILL the deployer with the commands it runs (its `nix copy`), as a closed terminal would."""
        if self.child.poll() is None:
            os.killpg(self.child.pid, signal.SIGKILL)

    def finish(self) -> None:
        try:
            self.exit_code = self.child.wait(timeout=DECIDE_SECONDS + PHASE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.child.pid, signal.SIGKILL)
            self.exit_code = self.child.wait()
        self.reader.join(timeout=10)

    def summary(self) -> str:
        return last_words("".join(self.output))


def last_words(output: str, characters: int = SUMMARY_CHARACTERS) -> str:
    """A command's last words, on one line without the error box's frame."""
    words = _words(output)
    return words if len(words) <= characters else "…" + words[-characters:].split(" ", 1)[-1]


def _words(output: str) -> str:
    """What a command printed as one line of words, without the error box's frame."""
    return " ".join(output.translate(str.maketrans("│╭╮╰╯─", "      ")).split())


def _children(pid: int) -> list[list[str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append((entry / "cmdline").read_text().split("\0"))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PHASE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {PHASE_SECONDS} s")
        time.sleep(0.05)


@contextmanager
def slow_link(link: str, rate: str = "4mbit") -> Iterator[None]:
    """Traffic to the lab host through link at rate (a tc token bucket on this side of its veth), for the
    block: a copy then lasts long enough to be caught in the act."""
    shaping = ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"]
    process.run(["tc", "qdisc", "replace", "dev", link, "root", *shaping])
    try:
        yield
    finally:
        process.run(["tc", "qdisc", "del", "dev", link, "root"], check=False)


@contextmanager
def link_down(link: str) -> Iterator[None]:
    """The lab host's veth down (its traffic fails here: the lab's unreachable routes), for the block."""
    process.run(["ip", "link", "set", link, "down"])
    try:
        yield
    finally:
        process.run(["ip", "link", "set", link, "up"])


# Where a drill puts the small filesystem that holds what is written to a lab host's /nix/store.
SMALL_STORE = "/run/djdeploy-drill-store"


@contextmanager
def store_full(lab: Lab, size: str = "1m") -> Iterator[None]:
    """lab1's /nix/store with only `size` to grow, for the block: an overlay on it whose upper layer is a
    tmpfs of that size, so a copy fails with ENOSPC on the host (and nothing of this machine fills up).
    Afterwards the paths the copy completed (valid in the store's database) move to the real store."""
    with lab.remote() as remote:
        remote.run_shell(
            f"mkdir -p {SMALL_STORE} && mount -t tmpfs -o size={size} drill-store {SMALL_STORE} && "
            f"mkdir {SMALL_STORE}/upper {SMALL_STORE}/work && mount -t overlay drill-store -o "
            f"lowerdir=/nix/store,upperdir={SMALL_STORE}/upper,workdir={SMALL_STORE}/work /nix/store"
        )
    try:
        yield
    finally:
        with lab.remote() as remote:
            remote.run_shell(
                f"cd {SMALL_STORE}/upper && valid=$(for p in *; do "
                'nix-store --check-validity "/nix/store/$p" 2>/dev/null && echo "$p"; done); '
                "cd / && umount /nix/store && "
                f'for p in $valid; do cp -a "{SMALL_STORE}/upper/$p" /nix/store/; done; '
                f"umount {SMALL_STORE} && rmdir {SMALL_STORE}"
            )
