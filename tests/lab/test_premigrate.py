"""Migrations before the switch on a lab host: a slow safe one runs while the old release serves, a failing
one switches nothing, an unsafe one stays with the switch and the deploy says why."""

from __future__ import annotations

import ssl
import subprocess
import time
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import write_inventory
from tests.lab.test_deploy import deploy, deploy_log, generation, lab1, release_source, said, start_deploy
from tests.lab.test_migration_plan import applied

pytestmark = pytest.mark.lab

# Seconds the safe data migration takes: long enough to see the old release serving meanwhile. It is a
# migration of its own: the field's, in the same transaction, would lock the table for as long.
SLOW_SECONDS = 20
SLOW = {
    "0002_note_colour.py": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("note", "colour", models.CharField(max_length=20, null=True))]
""",
    "0003_fill_colour.py": f"""
import time

from django.db import migrations


def fill(apps, schema_editor):
    apps.get_model("notes", "Note").objects.update(colour="blue")
    time.sleep({SLOW_SECONDS})


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_note_colour")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
""",
}
FAILING = """
from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("the data cannot be converted")


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_fill_colour")]
    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
"""
UNSAFE = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0003_fill_colour")]
    operations = [migrations.RemoveField("note", "colour")]
"""
# The pre-switch migrate among the host's processes (the brackets keep pgrep's own shell from matching).
PREMIGRATE_PROCESS = "timeout --kill-after=1[0]"


def release_with(lab: LabLayout, workspace: Path, release: str, migrations: dict[str, str]) -> Path:
    """An inventory of a release of the example with these migrations after 0001_initial."""
    source = release_source(workspace, release)
    for name, text in migrations.items():
        (source / "example_site" / "notes" / "migrations" / name).write_text(text)
    return write_inventory(lab, workspace, f"release-{release}", exampleSource=str(source))


def release_served(host: inventory.Host) -> str:
    """The release the home page (which reads the database) shows, or what went wrong."""
    try:
        response = probe.request(host.address, "example.lab", verify=False, timeout=10)
    except (OSError, ssl.SSLError) as exc:
        return f"no answer: {exc!r}"
    if response.status != 200:
        return f"status {response.status}"
    return response.body.split('id="release">', 1)[1].split("<", 1)[0]


def test_a_slow_safe_migration_runs_while_the_old_release_serves(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    changed = release_with(lab, workspace, "2.0.0", SLOW)
    host = lab1(first)
    running = start_deploy(changed, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    served_meanwhile: list[str] = []
    deadline = time.monotonic() + 600
    with Remote(host.ssh_target) as remote:
        while running.poll() is None and time.monotonic() < deadline:
            if remote.run(["pgrep", "-f", PREMIGRATE_PROCESS], check=False).ok:
                served_meanwhile.append(release_served(host))
            time.sleep(0.5)
    stdout, stderr = running.communicate(timeout=60)
    print(stdout)  # the step lines, shown with -s
    assert running.returncode == 0, stdout + stderr
    # The old release answered while the new release's migration ran on the host.
    assert len(served_meanwhile) >= 5
    assert set(served_meanwhile) == {"1.0.0"}
    words = " ".join(stdout.split())
    assert "✓ migration plan: example: notes.0002_note_colour, notes.0003_fill_colour (apply 2)" in words
    assert "✓ migrate example before the switch (2 migration(s), old release serving)" in words
    assert release_served(host) == "2.0.0"
    assert applied(first) == ["0001_initial", "0002_note_colour", "0003_fill_colour"]
    # The switch's migration unit found them applied.
    with Remote(host.ssh_target) as remote:
        journal = remote.run(
            ["journalctl", "--no-pager", "--output=cat", "--unit=django-migrate-example", "--lines=20"]
        ).stdout
    assert "No migrations to apply." in journal


def test_a_failing_migration_switches_nothing_and_releases_the_lock(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    host = lab1(first)
    before = generation(host)
    changed = release_with(lab, workspace, "3.0.0", {**SLOW, "0004_fail.py": FAILING})
    result = deploy(changed)
    assert result.returncode == 1
    words = said(result)
    assert (
        "lab1: the migrations of example failed (exit code 1), so nothing was switched: the old release "
        "still serves."
    ) in words
    assert "RuntimeError: the data cannot be converted" in words
    assert "✗ migrate example before the switch" in words
    assert generation(host) == before
    assert release_served(host) == "2.0.0"
    assert applied(first) == ["0001_initial", "0002_note_colour", "0003_fill_colour"]
    last = deploy_log(host)[-1]
    assert last["outcome"] == "not switched"
    assert str(last["reason"]).startswith("lab1: the migrations of example failed (exit code 1)")
    with Remote(host.ssh_target) as remote:
        assert not remote.run(["test", "-e", "/run/djdeploy/lock"], check=False).ok


def test_an_unsafe_migration_stays_with_the_switch_and_says_why(
    lab: LabLayout, workspace: Path, first: Path
) -> None:
    changed = release_with(lab, workspace, "4.0.0", {**SLOW, "0004_remove_colour.py": UNSAFE})
    result = deploy(changed)
    assert result.returncode == 0, result.stdout + result.stderr
    words = said(result)
    assert (
        "example: 1 migration(s) run in the switch, gunicorn stopped meanwhile: unsafe while the old "
        "release serves: notes.0004_remove_colour removes the field note.colour"
    ) in words
    assert "before the switch" not in words
    assert release_served(lab1(first)) == "4.0.0"
    assert applied(first) == ["0001_initial", "0002_note_colour", "0003_fill_colour", "0004_remove_colour"]
