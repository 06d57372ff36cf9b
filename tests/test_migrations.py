"""The migration plan: the command that asks the new release on the host, and how its answer is told."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from djdeploy.deploy import migrations
from djdeploy.host import sites
from tests.fake_ssh import Answer, ok
from tests.test_ops_fakes import EXAMPLE_SITE, Host, connected

[SITE] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
SYSTEM = Path("/nix/store/" + "b" * 32 + "-lab-system-new")
ANSWER = {
    "apply": [
        {"app": "notes", "name": "0002_colour", "unsafe": [], "irreversible": []},
        {
            "app": "notes",
            "name": "0003_drop",
            "unsafe": ["removes the field note.colour"],
            "irreversible": [],
        },
        {
            "app": "shop",
            "name": "0001_initial",
            "unsafe": [],
            "irreversible": ["runs SQL without reverse SQL"],
        },
    ],
    "now": {"shop": "zero", "notes": "0001_initial"},
}


def test_the_new_releases_manage_command_is_asked_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Django's shell says what it imported before the script prints its line.
    said = "7 objects imported automatically\n@@djdeploy-migration-plan " + json.dumps(ANSWER) + "\n"
    remote, connection = connected(monkeypatch, Host(respond=lambda command: ok(said)))
    plan = migrations.plan(remote, SYSTEM, SITE)
    [sent] = connection.sent
    assert sent.command.startswith(f"{SYSTEM}/sw/bin/manage-example shell -c ")
    assert sent.privileged
    assert [migration.label for migration in plan.apply] == [
        "notes.0002_colour",
        "notes.0003_drop",
        "shop.0001_initial",
    ]
    assert migrations.describe(plan) == [
        "example: 3 migration(s) to apply: notes.0002_colour, notes.0003_drop, shop.0001_initial",
        "  unsafe while the old release serves: notes.0003_drop (removes the field note.colour)",
        "  cannot be unapplied: shop.0001_initial (runs SQL without reverse SQL)",
        "  to go back: migrate notes 0001_initial, migrate shop zero",
    ]


def test_nothing_to_apply_is_one_line() -> None:
    plan = migrations.parse("example", json.dumps({"apply": [], "now": {}}))
    assert migrations.describe(plan) == ["example: no migrations to apply"]


def test_a_release_that_cannot_start_django_says_what_it_said(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = Answer("", 1, "Traceback (most recent call last):\nImproperlyConfigured: SECRET_KEY\n")
    remote, _ = connected(monkeypatch, Host(respond=lambda command: failing))
    with pytest.raises(migrations.MigrationPlanError, match="could not list its migrations on lab1") as error:
        migrations.plan(remote, SYSTEM, SITE)
    assert "ImproperlyConfigured: SECRET_KEY" in error.value.message


CHECK = (
    "printf '%s ' example; sh -c "
    + shlex.quote(migrations.CHECK_SCRIPT)
    + f" djdeploy-migration-check {SYSTEM}/sw/bin/manage-example /run/current-system/sw/bin/manage-example"
    + " example /run/djdeploy/migration-files"
)


def test_a_database_with_every_migration_of_the_release_costs_one_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote, connection = connected(monkeypatch, Host(respond=lambda command: ok("example applied\n")))
    plans = migrations.plan_sites(remote, SYSTEM, [SITE])
    assert [sent.command for sent in connection.sent] == [CHECK]
    assert plans == (migrations.SitePlan("example", (), ()),)
    assert migrations.summary(plans) == "nothing to apply"


def test_a_site_without_its_database_yet_applies_everything_without_asking_django(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote, connection = connected(monkeypatch, Host(respond=lambda command: ok("example new\n")))
    plans = migrations.plan_sites(remote, SYSTEM, [SITE])
    assert [sent.command for sent in connection.sent] == [CHECK]
    assert migrations.summary(plans) == "example: a new database, every migration applies"


def test_a_release_with_new_migrations_is_then_asked_with_its_own_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def respond(command: str) -> Answer:
        if "djdeploy-migration-check" in command:
            return ok("example unknown\n")
        return ok("@@djdeploy-migration-plan " + json.dumps(ANSWER) + "\n")

    remote, connection = connected(monkeypatch, Host(respond=respond))
    plans = migrations.plan_sites(remote, SYSTEM, [SITE])
    assert [sent.command for sent in connection.sent] == [
        CHECK,
        shlex.join(migrations.command(SYSTEM, SITE)),
    ]
    assert migrations.summary(plans) == (
        "example: notes.0002_colour, notes.0003_drop, shop.0001_initial (apply 3)"
    )
    assert plans[0].now == (("notes", "0001_initial"), ("shop", "zero"))
