"""The migration plan of `deploy --dry-run`: the new release's migrations, asked of its own code on the host,
with those that break the old release while it serves and those that cannot be unapplied; nothing switched."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from djdeploy.host import migration_files
from djdeploy.host import paths as host_paths
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import write_inventory
from tests.lab.test_deploy import deploy, generation, lab1, release_source, said

pytestmark = pytest.mark.lab

# Three migrations after 0001_initial: a nullable field, its removal, a data migration without reverse.
MIGRATIONS = {
    "0002_note_colour.py": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("note", "colour", models.CharField(max_length=20, null=True))]
""",
    "0003_remove_note_colour.py": """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_colour")]
    operations = [migrations.RemoveField("note", "colour")]
""",
    "0004_titles.py": """
from django.db import migrations


def shout(apps, schema_editor):
    apps.get_model("notes", "Note").objects.update(title="LOUD")


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_remove_note_colour")]
    operations = [migrations.RunPython(shout)]
""",
}


def applied(first: Path) -> list[str]:
    with Remote(lab1(first).ssh_target) as remote:
        query = "SELECT name FROM django_migrations WHERE app = 'notes' ORDER BY id"
        return remote.run(
            ["runuser", "-u", "postgres", "--", "psql", "-XAt", "-d", "example", "-c", query]
        ).stdout.split()


def check(first: Path) -> str:
    """What migration-check.sh answers of the running release, asked as the deploy and `status` ask it."""
    manage = shlex.quote(f"{host_paths.CURRENT_SYSTEM}/sw/bin/manage-example")
    with Remote(lab1(first).ssh_target) as remote:
        return remote.run_shell(migration_files.check_command(manage, manage, "example")).stdout.strip()


def test_the_migration_files_tell_every_migration_applied_in_one_query(first: Path) -> None:
    assert check(first) == "applied"
    # Migrated back to zero, the app has no rows but has content types: its files count, unapplied.
    with Remote(lab1(first).ssh_target) as remote:
        manage = [f"{host_paths.CURRENT_SYSTEM}/sw/bin/manage-example", "migrate", "--no-input"]
        remote.run([*manage, "notes", "zero"])
        try:
            assert check(first) == "unknown"
        finally:
            remote.run(manage)
    assert check(first) == "applied"


def test_a_release_without_migrations_says_so(lab: LabLayout, workspace: Path, first: Path) -> None:
    changed = write_inventory(
        lab, workspace, "no-migrations", exampleSource=str(release_source(workspace, "1.1.0"))
    )
    result = deploy(changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "example: no migrations to apply" in said(result)
    assert generation(lab1(first)) == "system-1-link"


def test_the_plan_lists_the_new_migrations_and_flags_them(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    source = release_source(workspace, "2.0.0")
    for name, text in MIGRATIONS.items():
        (source / "example_site" / "notes" / "migrations" / name).write_text(text)
    changed = write_inventory(lab, workspace, "migrations", exampleSource=str(source))
    result = deploy(changed, "--dry-run")
    assert result.returncode == 0, result.stderr
    # One line of words: the console wraps long lines.
    words = said(result)
    assert (
        "example: 3 migration(s) to apply: notes.0002_note_colour, notes.0003_remove_note_colour, "
        "notes.0004_titles"
    ) in words
    assert (
        "unsafe while the old release serves: notes.0003_remove_note_colour (removes the field note.colour)"
    ) in words
    assert "cannot be unapplied: notes.0004_titles (runs Python without reverse code)" in words
    assert "to go back: migrate notes 0001_initial" in words
    # Asked, not applied: the host runs and its database holds what they did before.
    assert generation(lab1(first)) == "system-1-link"
    assert applied(first) == ["0001_initial"]
