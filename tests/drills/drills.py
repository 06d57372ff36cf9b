"""The drills: each causes one fault during a deploy to lab1 and returns what the host says afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from djdeploy.lab import machine
from tests.drills.harness import Deployer, Lab, Row, last_words, link_down, slow_link, store_full
from tests.lab.helpers import inv
from tests.lab.test_deploy import deploy, release_source, said

# A release whose health check fails (its page does not exist): the deploy stays in the health check.
FAILING_CHECK = {"healthCheckPath": '"/no-such-page"'}


def ctrl_c_at_copy(lab: Lab) -> Row:
    def fault(deployer: Deployer) -> None:
        deployer.wait_until(deployer.copying, "nix copy")
        deployer.signal(signal.SIGINT)

    release = lab.release(f"copy-{time.time_ns()}")  # a new build: the host lacks its paths
    with slow_link(lab.layout.host(1).host_link):
        return lab.run("Ctrl-C at copy", fault, release, expected_lines=1)


def ctrl_c_at_switch(lab: Lab) -> Row:
    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("activating", "switched")
        deployer.signal(signal.SIGINT)

    return lab.run("Ctrl-C at switch", fault, lab.release("switch"))


def ctrl_c_at_health_check(lab: Lab) -> Row:
    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("switched")
        deployer.signal(signal.SIGINT)
        deployer.wait_for_output("stopping: rejecting generation")

    return lab.run("Ctrl-C at health check", fault, lab.release("checked", **FAILING_CHECK))


def ctrl_c_twice(lab: Lab) -> Row:
    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("switched")
        deployer.signal(signal.SIGINT)
        deployer.wait_for_output("stopping: rejecting generation")
        deployer.signal(signal.SIGINT)

    return lab.run("Ctrl-C twice", fault, lab.release("checked", **FAILING_CHECK))


def killed_at(state: str) -> Callable[[Lab], Row]:
    def drill(lab: Lab) -> Row:
        def fault(deployer: Deployer) -> None:
            deployer.wait_for_state(state)
            deployer.signal(signal.SIGKILL)

        return lab.run(f"deployer SIGKILLed at {state}", fault, lab.release("killed", **FAILING_CHECK))

    return drill


def killed_at_copy(lab: Lab) -> Row:
    """Nothing was switched and no supervisor runs, so nothing on the host ends the dead deployer's lock:
    the next deploy is refused saying how to break it, a plain `unlock` does and records the deploy as not
    switched, and a deploy then works."""
    name = f"killed-copy-{time.time_ns()}"  # a new build: the host lacks its paths
    release = lab.release(name)
    notes = []

    def fault(deployer: Deployer) -> None:
        deployer.wait_until(deployer.copying, "nix copy")
        deployer.kill_all()
        deployer.finish()
        refused = deploy(release)
        notes.append(f"next deploy: {refused.returncode}")
        if refused.returncode == 0 or "djdeploy unlock --host lab1" not in said(refused):
            raise AssertionError(f"the next deploy did not say how to break the lock: {said(refused)}")
        unlocked = _unlock(lab)
        notes.append(f"unlock: {unlocked.returncode}")
        if unlocked.returncode != 0:
            raise AssertionError(f"unlock failed: {said(unlocked)}")

    with slow_link(lab.layout.host(1).host_link):
        row = lab.run("deployer SIGKILLed at copy", fault, release)
    again = deploy(release)
    notes.append(f"deploy after: {again.returncode}")
    problems = row.problems + (() if again.returncode == 0 else (f"the deploy after failed: {said(again)}",))
    return replace(
        row,
        exit=f"{row.exit} [{', '.join(notes)}]",
        lock=f"held until `unlock`, then {row.lock}",
        problems=problems,
    )


def power_off_during_activation(lab: Lab) -> Row:
    """The host loses its power while it activates (its migration runs) and boots again: on its boot default,
    the generation before. The supervisor switches with `switch-to-configuration test`, which leaves the
    boot loader alone, and makes a generation the boot default (`switch-to-configuration boot`: the
    loader.conf default of NixOS's systemd-boot builder) only once confirmed. The profile still names the
    unconfirmed generation, as on NixOS after `nix-env --set` and a power cut. /run is gone with the lock and
    the supervisor; the deploy gets no log line (the host died before it decided; the deployer says so), and
    the next status and deploy work."""
    # Unsafe, so that it runs in the switch rather than before it.
    release = _with_migration(lab, "power-off", "time.sleep(120)", unsafe=True)
    notes = []
    told = []

    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("activating")
        time.sleep(3)  # well into the switch: the profile set, the migration running
        machine.reboot(lab.layout, lab.layout.host(1), power_loss=True)
        deployer.finish()
        told.append(deployer.said("If it restarts before, it boots its boot default"))

    row = lab.run("power off during activation", fault, release, expected_lines=0)
    if told != [True]:
        row = replace(row, problems=(*row.problems, "the deploy did not say what a restarted host does"))
    status = inv("status", "--inventory", str(lab.baseline), "--host", "lab1", check=False)
    again = deploy(lab.baseline)
    notes += [f"status after: {status.returncode}", f"deploy after: {again.returncode}"]
    problems = [
        f"{what} failed: {said(done)}"
        for what, done in (("status", status), ("deploy", again))
        if done.returncode
    ]
    return replace(row, exit=f"{row.exit} [{', '.join(notes)}]", problems=row.problems + tuple(problems))


def disk_full_during_copy(lab: Lab) -> Row:
    name = f"disk-full-{time.time_ns()}"  # a new build: the host lacks its paths
    release = lab.release(name)
    # More than the host's store has room for.
    (lab.workspace / f"example-{name}" / "ballast.bin").write_bytes(os.urandom(BALLAST_BYTES))
    told = []

    def fault(deployer: Deployer) -> None:
        deployer.finish()
        told.append(deployer.said("the host's disk is full"))

    with store_full(lab):
        row = lab.run("disk full during copy", fault, release)
    if told != [True]:
        return replace(row, problems=(*row.problems, "the deploy did not say the host's disk is full"))
    return row


def fleet_with_one_bad_host(lab: Lab) -> Row:
    """lab1, lab2 and lab3 in batches of one; lab2's health check fails: it rolls back, the fleet stops and
    lab3 is not touched."""
    baseline = lab.fleet("fleet-baseline", {number: {} for number in FLEET})
    assert deploy_all(baseline).returncode == 0
    before = {number: lab.log_lines(number) for number in FLEET}
    source = str(release_source(lab.workspace, "fleet"))
    bad = {2}
    release = lab.fleet(
        "fleet", {n: {"exampleSource": source, **(FAILING_CHECK if n in bad else {})} for n in FLEET}
    )
    result = deploy_all(release, "--batch", "1")
    lines = {1: 1, 2: 1, 3: 0}
    after = {number: lab.after(number, before[number], lines[number]) for number in FLEET}
    problems = [f"lab{number}: {problem}" for number, seen in after.items() for problem in seen.problems]
    expected = {1: "fleet", 2: "1.0.0", 3: "1.0.0"}
    problems += [
        f"lab{n} serves {after[n].serving}, not {expected[n]}"
        for n in FLEET
        if after[n].serving != expected[n]
    ]
    if result.returncode == 0:
        problems.append("exit code 0 though lab2 failed")
    words = said(result)
    for told in ("Deployed lab1", "lab2: rolled back", "not deployed: lab3"):
        if told not in words:
            problems.append(f"the output does not say {told!r}")

    def column(name: str) -> str:
        return ", ".join(f"lab{number} {getattr(seen, name)}" for number, seen in after.items())

    return Row(
        drill="fleet, lab2 bad, --batch 1",
        generation=column("generation"),
        serving=column("serving"),
        exit=f"{result.returncode}: {last_words(result.stdout + result.stderr)}",
        lock=column("lock"),
        log=column("log"),
        problems=tuple(problems),
    )


# The hosts of the fleet drill.
FLEET = (1, 2, 3)
# Data the disk-full drill's release carries: more than the room the drill leaves on the host.
BALLAST_BYTES = 8 * 1024 * 1024


def deploy_all(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return inv("deploy", "--inventory", str(path), *args, check=False)


def cut_longer_than_the_window(lab: Lab) -> Row:
    host = lab.host

    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("switched")
        window = host.timeouts.health + host.timeouts.confirm
        with link_down(lab.layout.host(1).host_link):
            time.sleep(window + 10)

    return lab.run("veth down longer than the window", fault, lab.release("cut", **FAILING_CHECK))


def cut_during_the_copy(lab: Lab) -> Row:
    name = f"cut-copy-{time.time_ns()}"  # a new build: the host lacks its paths

    def fault(deployer: Deployer) -> None:
        deployer.wait_until(deployer.copying, "nix copy")
        with link_down(lab.layout.host(1).host_link):
            time.sleep(10)

    with slow_link(lab.layout.host(1).host_link):
        return lab.run("veth down 10 s during the copy", fault, lab.release(name), new_release=name)


def unlock_while_a_supervisor_runs(lab: Lab) -> Row:
    notes = []

    def fault(deployer: Deployer) -> None:
        deployer.wait_for_state("switched")
        deployer.signal(signal.SIGKILL)
        refused = _unlock(lab)
        notes.append(f"unlock: {refused.returncode}")
        if refused.returncode == 0 or "is still running" not in said(refused):
            raise AssertionError(f"unlock did not refuse: {said(refused)}")
        forced = _unlock(lab, "--force")
        notes.append(f"--force: {forced.returncode}")
        if forced.returncode != 0 or "ended: rolled back to generation" not in said(forced):
            raise AssertionError(f"unlock --force did not roll back: {said(forced)}")

    row = lab.run("unlock while a supervisor runs", fault, lab.release("unlocked", **FAILING_CHECK))
    return replace(row, exit=f"{row.exit} [{', '.join(notes)}]")


def _unlock(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return inv("unlock", "--inventory", str(lab.baseline), "--host", "lab1", *args, check=False)


def two_deploys_at_once(lab: Lab) -> Row:
    release = lab.release(f"twice-{time.time_ns()}")  # a new build: its copy keeps the lock a while
    second: list[subprocess.CompletedProcess[str]] = []

    def fault(deployer: Deployer) -> None:
        deployer.wait_until(deployer.copying, "nix copy")
        second.append(deploy(release))

    with slow_link(lab.layout.host(1).host_link):
        row = lab.run("two deploys at once", fault, release, new_release=release.stem.removeprefix("drill-"))
    [other] = second
    refused = other.returncode == 1 and "is locked by another deploy" in said(other)
    problems = row.problems + (() if refused else ("the second deploy was not refused by the lock",))
    return replace(row, exit=f"{row.exit} [second: {other.returncode}]", problems=problems)


def _with_migration(lab: Lab, name: str, body: str, *, unsafe: bool = False) -> Path:
    """A release whose second migration of the notes app runs body (Python, in a function of apps): before
    the switch, or in it when unsafe (it also adds a NOT NULL field without a database default)."""
    release = lab.release(name)
    migrations = lab.workspace / f"example-{name}" / "example_site" / "notes" / "migrations"
    field = "migrations.AddField('note', 'drill', models.IntegerField(default=0)), " if unsafe else ""
    # Named after the release: a drill's migration that stayed applied is not another's.
    (migrations / f"0002_drill_{name.replace('-', '_')}.py").write_text(
        "import time\n\nfrom django.db import migrations, models\n\n\n"
        f"def run(apps, schema_editor):\n    {body}\n\n\n"
        "class Migration(migrations.Migration):\n"
        "    dependencies = [('notes', '0001_initial')]\n"
        f"    operations = [{field}migrations.RunPython(run)]\n"
    )
    return release


def failing_migration(lab: Lab) -> Row:
    release = _with_migration(lab, "migration", "raise RuntimeError('this migration fails on purpose')")
    return lab.run("failing migration", lambda deployer: None, release)


def migration_longer_than_the_activation_timeout(lab: Lab) -> Row:
    release = _with_migration(lab, "slow-migration", "time.sleep(30)", unsafe=True)
    return lab.run(
        "migration in the switch longer than --activation-timeout 5",
        lambda deployer: None,
        release,
        arguments=("--activation-timeout", "5"),
    )


def migration_longer_than_the_migrate_timeout(lab: Lab) -> Row:
    release = _with_migration(lab, "slow-premigration", "time.sleep(30)")
    return lab.run(
        "migration before the switch longer than --migrate-timeout 5",
        lambda deployer: None,
        release,
        arguments=("--migrate-timeout", "5"),
    )


DRILLS: dict[str, Callable[[Lab], Row]] = {
    "ctrl-c-at-copy": ctrl_c_at_copy,
    "ctrl-c-at-switch": ctrl_c_at_switch,
    "ctrl-c-at-health-check": ctrl_c_at_health_check,
    "ctrl-c-twice": ctrl_c_twice,
    "killed-at-copy": killed_at_copy,
    "killed-at-switch": killed_at("activating"),
    "killed-at-health-check": killed_at("switched"),
    "cut-during-the-copy": cut_during_the_copy,
    "cut-longer-than-the-window": cut_longer_than_the_window,
    "unlock-while-a-supervisor-runs": unlock_while_a_supervisor_runs,
    "two-deploys-at-once": two_deploys_at_once,
    "failing-migration": failing_migration,
    "migration-longer-than-the-activation-timeout": migration_longer_than_the_activation_timeout,
    "migration-longer-than-the-migrate-timeout": migration_longer_than_the_migrate_timeout,
    "power-off-during-activation": power_off_during_activation,
    "disk-full-during-copy": disk_full_during_copy,
    "fleet-one-bad-host": fleet_with_one_bad_host,
}
