"""The drills: each causes one fault during a deploy to lab1 and returns what the host says afterwards."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.drills.harness import Deployer, Lab, Row, link_down, slow_link
from tests.lab.helpers import inv
from tests.lab.test_deploy import deploy, said

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
    "killed-at-switch": killed_at("activating"),
    "killed-at-health-check": killed_at("switched"),
    "cut-during-the-copy": cut_during_the_copy,
    "cut-longer-than-the-window": cut_longer_than_the_window,
    "unlock-while-a-supervisor-runs": unlock_while_a_supervisor_runs,
    "two-deploys-at-once": two_deploys_at_once,
    "failing-migration": failing_migration,
    "migration-longer-than-the-activation-timeout": migration_longer_than_the_activation_timeout,
    "migration-longer-than-the-migrate-timeout": migration_longer_than_the_migrate_timeout,
}
