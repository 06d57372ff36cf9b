"""A deploy that migrates, end to end: its plan in the step line, a dump first, the refusal of unsafe
migrations when asked, and a rollback that puts the schema back with the code, as rollback.database says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import inv, write_inventory
from tests.lab.test_deploy import deploy, deploy_log, generation, lab1, page, release_source, said
from tests.lab.test_migration_plan import MIGRATIONS, applied

pytestmark = pytest.mark.lab

NULLABLE = {"0002_note_colour.py": MIGRATIONS["0002_note_colour.py"]}
# Django fills the existing rows with the default, then drops it: the old release's inserts then fail.
NOT_NULL_WITH_DEFAULT = {
    "0002_note_size.py": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("note", "size", models.IntegerField(default=0))]
"""
}
FIELD_REMOVED = {name: MIGRATIONS[name] for name in ("0002_note_colour.py", "0003_remove_note_colour.py")}
DATA_WITHOUT_REVERSE = {
    "0002_titles.py": MIGRATIONS["0004_titles.py"].replace("0003_remove_note_colour", "0001_initial")
}
NOTES = "from example_site.notes.models import Note; "


def release(
    lab: LabLayout,
    workspace: Path,
    name: str,
    migrations: dict[str, str],
    *,
    settings: dict[str, object] | None = None,
    failing: bool = False,
) -> Path:
    """An inventory whose lab1 gets a release of the example with these migrations of the notes app."""
    source = release_source(workspace, name)
    for file, text in migrations.items():
        (source / "example_site" / "notes" / "migrations" / file).write_text(text)
    # A path that answers 404 fails the health check after the switch.
    health = '"/no-such-page"' if failing else '"/healthz"'
    path = write_inventory(lab, workspace, name, exampleSource=str(source), healthCheckPath=health)
    if settings:
        loaded = yaml.safe_load(path.read_text())
        loaded["defaults"].update(settings)
        path.write_text(yaml.safe_dump(loaded))
    return path


def notes(inventory_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Python in the Django shell of the release lab1 runs now."""
    with Remote(lab1(inventory_path).ssh_target) as remote:
        result = remote.run(["manage-example", "shell", "-c", NOTES + code], check=False, timeout=120)
    return subprocess.CompletedProcess([], result.exit_code, result.stdout, result.stderr)


def write_note(host: inventory.Host, title: str) -> probe.Response:
    """Post a note through the site's form over HTTPS, as a browser does: the page's CSRF token and its
    cookie go back with the form."""
    form = probe.request(host.address, "example.lab", "/notes/new", verify=False)
    assert form.status == 200, form.body
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
    assert token, form.body
    return probe.request(
        host.address,
        "example.lab",
        "/notes/new",
        verify=False,
        method="POST",
        body=urlencode({"title": title, "csrfmiddlewaretoken": token.group(1)}).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": form.headers["set-cookie"].partition(";")[0],
            "Origin": "https://example.lab",
        },
    )


def test_a_nullable_field_is_planned_dumped_deployed_and_rolled_back_by_hand(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    changed = release(lab, workspace, "nullable", NULLABLE)
    result = deploy(changed)
    assert result.returncode == 0, result.stdout + result.stderr
    words = said(result)
    assert "✓ migration plan: example: notes.0002_note_colour (apply 1)" in words
    assert "✓ back up the database of example: " in words
    assert "-before-deploy.dump" in words
    assert applied(first) == ["0001_initial", "0002_note_colour"]
    backups = deploy_log(lab1(first))[-1]["backups"]
    assert isinstance(backups, list)
    [dump] = backups
    assert dump["name"].endswith("-before-deploy.dump")
    assert dump["size"] > 0

    back = inv("rollback", "--inventory", str(changed), "--host", "lab1", check=False)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "example: unapplied notes.0002_note_colour with the code of the new release" in said(back)
    assert applied(first) == ["0001_initial"]
    assert generation(lab1(first)) == "system-1-link"


def test_a_failed_health_check_after_a_migration_rolls_back_code_and_schema(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    failing = release(lab, workspace, "not-null", NOT_NULL_WITH_DEFAULT, failing=True)
    before = generation(lab1(first))
    result = deploy(failing)
    assert result.returncode == 1
    words = said(result)
    assert "because the health check failed" in words
    assert "example: unapplied notes.0002_note_size with the code of the new release" in words
    assert "(migrate notes 0001_initial)" in words
    assert generation(lab1(first)) == before
    assert applied(first) == ["0001_initial"]
    # The old release writes again, through the site: the NOT NULL column it does not know is gone.
    saved = write_note(lab1(first), "after the rollback")
    assert (saved.status, saved.location) == (302, "/"), saved.body
    assert "<li>after the rollback</li>" in page(lab1(first))


def test_require_safe_migrations_refuses_a_field_removal_before_the_switch(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    removal = release(lab, workspace, "removal", FIELD_REMOVED)
    before = generation(lab1(first))
    result = deploy(removal, "--require-safe-migrations")
    assert result.returncode == 1
    words = said(result)
    assert "refused before anything was switched" in words
    assert "notes.0003_remove_note_colour (removes the field note.colour)" in words
    assert generation(lab1(first)) == before
    assert applied(first) == ["0001_initial"]
    last = deploy_log(lab1(first))[-1]
    assert last["outcome"] == "not switched"
    assert "refused before anything was switched" in str(last["reason"])
    with Remote(lab1(first).ssh_target) as remote:  # the lock is released
        assert not remote.run(["test", "-e", "/run/djdeploy/lock"], check=False).ok


@pytest.mark.parametrize("database", ["restore", "reverse", "keep"])
def test_a_data_migration_without_reverse_follows_rollback_database(
    lab: LabLayout, workspace: Path, first: Path, database: str
) -> None:
    notes(first, "Note.objects.all().delete(); Note.objects.create(title='quiet')")
    failing = release(
        lab,
        workspace,
        f"data-{database}",
        DATA_WITHOUT_REVERSE,
        settings={"rollback": {"database": database}},
        failing=True,
    )
    result = deploy(failing)
    assert result.returncode == 1
    words = said(result)
    assert "because the health check failed" in words
    titles = notes(first, "print(list(Note.objects.values_list('title', flat=True)))").stdout
    if database == "restore":
        assert "example: restored " in words
        assert "writes since the deploy are gone" in words
        assert applied(first) == ["0001_initial"]
        assert "['quiet']" in titles
        return
    why = "notes.0002_titles cannot be unapplied" if database == "reverse" else "rollback.database is keep"
    assert (
        f"example: {why}, so its schema stays ahead of the old code: notes.0002_titles stay applied" in words
    )
    assert "the data from before the deploy is in " in words
    assert "`djdeploy db.restore lab1 --site example --backup " in words
    assert applied(first) == ["0001_initial", "0002_titles"]
    assert "['LOUD']" in titles
    # Back to the state before, for the next setting.
    with Remote(lab1(first).ssh_target) as remote:
        query = "DELETE FROM django_migrations WHERE name = '0002_titles'"
        remote.run(["runuser", "-u", "postgres", "--", "psql", "-XAt", "-d", "example", "-c", query])
