"""Migrations applied before the switch while the old release serves: the commands, in order, and how a
failure or an unsafe plan is told."""

# ruff: noqa: F811 (the fixtures host and fakes, imported, are the tests' arguments)
from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

from rich.console import Console

from djdeploy.deploy import fleet, host_run, interrupt, migrations, premigrate
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Result
from djdeploy.host import paths as host_paths
from djdeploy.host import system as host_system
from djdeploy.inventory import Host
from djdeploy.remote.ssh import SshSettings
from tests.fake_ssh import Answer
from tests.test_deploy_commands import (  # noqa: F401 (fixtures used below)
    ACTIVATION_ID,
    NEW,
    SITE,
    DeployHost,
    fakes,
    host,
    started_supervisor,
    writes_the_log_or_unlocks,
)

SAFE: dict[str, object] = {
    "apply": [
        {"app": "notes", "name": "0002_note_colour", "unsafe": [], "irreversible": []},
        {
            "app": "notes",
            "name": "0003_fill",
            "unsafe": [],
            "irreversible": ["runs Python without reverse code"],
        },
    ],
    "now": {"notes": "0001_initial"},
}
UNSAFE: dict[str, object] = {
    "apply": [
        {"app": "notes", "name": "0002_note_colour", "unsafe": [], "irreversible": []},
        {
            "app": "notes",
            "name": "0003_remove",
            "unsafe": ["removes the field note.colour"],
            "irreversible": [],
        },
    ],
    "now": {"notes": "0001_initial"},
}
MIGRATE = f"timeout --kill-after=10 600 {NEW}/sw/bin/manage-example migrate --noinput"
PLAN = f"{NEW}/sw/bin/manage-example shell -c "


def run_deploy(target: Host, **options: Any) -> tuple[Result, str]:
    output = io.StringIO()
    [result] = fleet.deploy([target], Options(**options), Console(file=output, width=300))
    return result, output.getvalue()


def shape(commands: list[str]) -> list[str]:
    """The deploy's commands, the long ones by what they do."""
    names = {
        PLAN: "plan",
        "printf '%s ' example; sh -c ": "check",
        "sh -c ": "back up",
        "mkdir -p /run/djdeploy && ": "lock",
        f"mkdir -p {host_paths.ACTIVATION_DIR}/{ACTIVATION_ID} && printf": "start the supervisor",
        "deadline=": "wait",
    }
    return [next((name for start, name in names.items() if c.startswith(start)), c) for c in commands]


def test_safe_migrations_run_before_the_switch_with_the_new_code(host: Host, fakes: DeployHost) -> None:
    fakes.migration_plan = SAFE
    fakes.sudo_asks_password = True
    sudo_host = dataclasses.replace(host, ssh=SshSettings(user="deploy", sudo=True))
    result, output = run_deploy(sudo_host, sudo_password="secret")
    assert result.outcome == "deployed", result.message
    assert shape(fakes[0].commands) == [
        host_system.FACTS_COMMAND,
        "lock",
        "xargs -r nix-store --check-validity --print-invalid",
        "check",
        "plan",
        "back up",
        MIGRATE,
        "start the supervisor",
        "wait",
        "wait",
        # What the supervisor's schema step said (nothing, as the deploy was confirmed).
        f"cat {host_paths.ACTIVATION_DIR}/{ACTIVATION_ID}/schema.said 2>/dev/null; true",
    ]
    [migrate] = [sent for sent in fakes[0].sent if sent.command == MIGRATE]
    # As root (manage-example switches to the site user); the deployer waits for `timeout` on the host.
    assert migrate.privileged
    assert migrate.timeout == 630
    step = "migrate example before the switch (2 migration(s), old release serving)"
    assert step in dict(result.steps)
    names = [name for name, _ in result.steps]
    assert (
        names.index("migration plan") < names.index(step) < names.index("start the activation (systemd-run)")
    )
    assert f"✓ {step}" in output


def test_the_migrate_timeout_option_bounds_them_on_the_host(host: Host, fakes: DeployHost) -> None:
    fakes.migration_plan = SAFE
    result, _ = run_deploy(host, migrate_timeout=45)
    assert result.outcome == "deployed", result.message
    [migrate] = [sent for sent in fakes[0].sent if sent.command.startswith("timeout ")]
    assert migrate.command == f"timeout --kill-after=10 45 {NEW}/sw/bin/manage-example migrate --noinput"
    assert migrate.timeout == 75


def test_unsafe_migrations_stay_with_the_switch_and_say_why(host: Host, fakes: DeployHost) -> None:
    fakes.migration_plan = UNSAFE
    result, output = run_deploy(host)
    assert result.outcome == "deployed", result.message
    assert not any(command.startswith("timeout ") for command in fakes[0].commands)
    assert (
        "example: 2 migration(s) run in the switch, gunicorn stopped meanwhile: unsafe while the old release "
        "serves: notes.0003_remove removes the field note.colour"
    ) in output
    assert not any(name.startswith("migrate example") for name, _ in result.steps)


def test_nothing_to_apply_runs_no_migrate(host: Host, fakes: DeployHost) -> None:
    result, output = run_deploy(host)
    assert result.outcome == "deployed", result.message
    assert not any(command.startswith("timeout ") for command in fakes[0].commands)
    assert "before the switch" not in output


def test_a_site_the_host_does_not_run_yet_is_neither_planned_nor_migrated(
    host: Host, fakes: DeployHost
) -> None:
    fakes.answers = {"printf '%s ' example; sh -c ": "example new\n"}
    fakes.migration_plan = SAFE
    result, _ = run_deploy(host)
    assert result.outcome == "deployed", result.message
    assert not any(command.startswith(PLAN) or " migrate " in command for command in fakes[0].commands)


FAILED_MIGRATE = Answer(
    "Operations to perform:\n  Apply all migrations: notes\nRunning migrations:\n"
    "  Applying notes.0002_note_colour... OK\n  Applying notes.0003_fill...",
    1,
    'Traceback (most recent call last):\ndjango.db.utils.IntegrityError: null value in column "title"\n',
)


def test_a_failed_migration_switches_nothing_and_says_what_it_said(host: Host, fakes: DeployHost) -> None:
    fakes.migration_plan = SAFE
    fakes.migrate_answer = FAILED_MIGRATE
    result, output = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message == (
        "web1: the migrations of example failed (exit code 1), so nothing was switched: the old release "
        "still serves. These stay applied, which the plan found safe for the old release: "
        "notes.0002_note_colour. Fix the migration, then deploy again; "
        f"`{NEW}/sw/bin/manage-example migrate --noinput` on the host runs it by hand. It said:\n"
        "Operations to perform:\n  Apply all migrations: notes\nRunning migrations:\n"
        "  Applying notes.0002_note_colour... OK\n  Applying notes.0003_fill...\n"
        "Traceback (most recent call last):\n"
        'django.db.utils.IntegrityError: null value in column "title"'
    )
    commands = fakes[0].commands
    assert not any("systemd-run" in command for command in commands)
    # The deployer writes the "not switched" line and releases the lock: no supervisor runs.
    [ended] = [command for command in commands if writes_the_log_or_unlocks(command)]
    assert '"outcome": "not switched"' in ended
    assert "the migrations of example failed (exit code 1)" in ended
    assert "✗ migrate example before the switch" in output


def test_migrations_that_outlast_their_timeout_say_which_setting_gives_them_longer(
    host: Host, fakes: DeployHost
) -> None:
    fakes.migration_plan = SAFE
    fakes.migrate_answer = Answer("Running migrations:\n  Applying notes.0002_note_colour...", 124)
    result, _ = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith(
        "web1: the migrations of example did not finish within the 600 s they may take before the switch "
        "and were stopped, so nothing was switched: the old release still serves. Give them longer with "
        "`timeouts.migrate` in the inventory or `--migrate-timeout`. It said:\n"
    )
    assert not any("systemd-run" in command for command in fakes[0].commands)


def test_a_rollback_plans_and_migrates_nothing_before_its_switch(host: Host, fakes: DeployHost) -> None:
    fakes.migration_plan = SAFE
    fakes.generation = 2
    stopper = interrupt.Stopper[Result](lambda text: None)
    result = host_run.rollback(host, 1, Options(), Console(file=io.StringIO()), stopper)
    assert result.outcome == "deployed", result.message
    assert not any(command.startswith(PLAN) or " migrate " in command for command in fakes[0].commands)
    assert started_supervisor(next(c for c in fakes[0].commands if "systemd-run" in c))[-5] == "1"


def test_each_plan_decides_alone() -> None:
    safe, unsafe = (migrations.parse("example", json.dumps(answer)) for answer in (SAFE, UNSAFE))
    assert premigrate.deferred_reason(safe) is None
    assert premigrate.deferred_reason(unsafe) == (
        "example: 2 migration(s) run in the switch, gunicorn stopped meanwhile: unsafe while the old "
        "release serves: notes.0003_remove removes the field note.colour"
    )
    assert premigrate.command(NEW, SITE, 30) == [
        "timeout",
        "--kill-after=10",
        "30",
        f"{NEW}/sw/bin/manage-example",
        "migrate",
        "--noinput",
    ]
