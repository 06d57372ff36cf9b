"""The migration plan: the command that asks the new release on the host, and how its answer is told."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from djdeploy.deploy import migrations
from djdeploy.host import migration_files, sites
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
    + shlex.quote(migration_files.CHECK_SCRIPT)
    + f" djdeploy-migration-check {SYSTEM}/sw/bin/manage-example /run/current-system/sw/bin/manage-example"
    + " example /var/lib/djdeploy/migration-files"
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


# What django-migration-linter 6.0 printed of these migrations of the example (the summary shortened).
LINT_SUMMARY = "*** Summary ***\nValid migrations: 0/1\nErroneous migrations: 1/1\n"
LINTED = {
    "apply": [
        {
            "app": "notes",
            "name": "0003_remove_note_colour",
            "unsafe": ["removes the field note.colour"],
            "irreversible": [],
            "lint": {
                "report": "(notes, 0003_remove_note_colour)... ERR\n"
                "\tDROPPING columns (table: notes_note, column: colour)\n" + LINT_SUMMARY
            },
        },
        {
            "app": "notes",
            "name": "0004_titles",
            "unsafe": [],
            "irreversible": ["runs Python without reverse code"],
            "lint": {
                "report": "(notes, 0004_titles)... WARNING\n"
                "\t'shout': RunPython data migration is not reversible\n" + LINT_SUMMARY
            },
        },
        {
            "app": "notes",
            "name": "0005_ignored",
            "unsafe": [],
            "irreversible": [],
            "lint": {"report": "(notes, 0005_ignored)... OK (ignored)\n\tDROPPING table\n" + LINT_SUMMARY},
        },
        {
            "app": "notes",
            "name": "0006_broken",
            "unsafe": [],
            "irreversible": [],
            "lint": {"failed": "ProgrammingError: relation missing"},
        },
    ],
    "now": {"notes": "0002_note_colour"},
}


def test_the_linters_errors_are_unsafe_and_its_warnings_shown() -> None:
    plan = migrations.parse("example", json.dumps(LINTED))
    removal, titles, ignored, broken = plan.apply
    assert removal.unsafe == (
        "removes the field note.colour",
        "django-migration-linter: DROPPING columns (table: notes_note, column: colour)",
    )
    assert titles.unsafe == ()
    assert titles.warnings == (
        "django-migration-linter: 'shout': RunPython data migration is not reversible",
    )
    assert ignored == migrations.Migration("notes", "0005_ignored")
    assert broken.warnings == ("django-migration-linter failed: ProgrammingError: relation missing",)
    assert migrations.describe(plan)[1:] == [
        "  unsafe while the old release serves: notes.0003_remove_note_colour "
        "(removes the field note.colour; "
        "django-migration-linter: DROPPING columns (table: notes_note, column: colour))",
        "  cannot be unapplied: notes.0004_titles (runs Python without reverse code)",
        "  warned of: notes.0004_titles (django-migration-linter: 'shout': RunPython data migration is not "
        "reversible)",
        "  warned of: notes.0006_broken (django-migration-linter failed: ProgrammingError: relation missing)",
        "  to go back: migrate notes 0002_note_colour",
    ]


def test_a_plan_without_the_linter_has_no_warnings() -> None:
    assert all(not migration.warnings for migration in migrations.parse("example", json.dumps(ANSWER)).apply)
