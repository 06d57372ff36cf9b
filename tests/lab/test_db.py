"""The db tasks end to end on a lab host: back up, list, restore a deleted note, download a dump."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.host import paths as host_paths
from djdeploy.remote.ssh import Remote
from tests.lab.deployed import deployed_lab
from tests.lab.helpers import REPO

pytestmark = pytest.mark.lab

NOTES = "from example_site.notes.models import Note; "


@pytest.fixture(scope="module")
def lab() -> Iterator[inventory.Inventory]:
    with deployed_lab(1) as loaded:
        yield loaded


def djdeploy(lab: inventory.Inventory, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`djdeploy ARGS` without a terminal, against the lab's inventory."""
    return subprocess.run(
        [sys.executable, "-c", "from djdeploy.cli import program; program.run()", *args],
        cwd=cwd,
        env={**os.environ, "DJDEPLOY_INVENTORY": str(lab.path), "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def notes(lab: inventory.Inventory, code: str) -> str:
    """Run Python in the example site's Django shell on lab1; the last line it printed."""
    with Remote(lab.hosts["lab1"].ssh_target) as remote:
        output = remote.run(["manage-example", "shell", "-c", NOTES + code], timeout=120).stdout
    # The shell first says what it imported by itself (Django 5.2 and later).
    return (output.strip().splitlines() or [""])[-1]


def test_a_deleted_note_comes_back_from_the_backup(lab: inventory.Inventory) -> None:
    notes(lab, "Note.objects.all().delete(); Note.objects.create(title='kept by the backup')")
    made = djdeploy(lab, "db.backup", "lab1")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("Backed up example on lab1: ")
    name = made.stdout.split(": ", 1)[1].split(",")[0]
    assert name.endswith("-manual.dump")

    listed = djdeploy(lab, "db.backups", "lab1")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
    assert "manual" in listed.stdout

    # Root's alone: the directory and the dump.
    with Remote(lab.hosts["lab1"].ssh_target) as remote:
        modes = remote.run(
            ["stat", "-c", "%a %U", host_paths.BACKUP_DIR, f"{host_paths.BACKUP_DIR}/example/{name}"]
        ).stdout.split("\n")
    assert modes[:2] == ["700 root", "600 root"]

    notes(lab, "Note.objects.all().delete(); Note.objects.create(title='written after the backup')")
    refused = djdeploy(lab, "db.restore", "lab1")
    assert refused.returncode == 1
    assert "add --yes to restore" in refused.stderr
    assert notes(lab, "print(list(Note.objects.values_list('title', flat=True)))") == (
        "['written after the backup']"
    )

    restored = djdeploy(lab, "db.restore", "lab1", "--yes")
    assert restored.returncode == 0, restored.stderr
    assert f"Restored {name} into example on lab1" in restored.stdout
    assert "the site is healthy" in restored.stdout
    assert notes(lab, "print(list(Note.objects.values_list('title', flat=True)))") == "['kept by the backup']"


def test_a_pulled_dump_is_a_whole_pg_dump_file(lab: inventory.Inventory, tmp_path: Path) -> None:
    pulled = djdeploy(lab, "db.pull", "lab1", "--to", str(tmp_path / "example.dump"))
    assert pulled.returncode == 0, pulled.stderr
    assert "Downloaded " in pulled.stdout
    dump = (tmp_path / "example.dump").read_bytes()
    # pg_dump's custom format starts with its magic; the size is the one the host reported.
    assert dump.startswith(b"PGDMP")
    name = pulled.stdout.split("Downloaded ", 1)[1].split(" ")[0]
    with Remote(lab.hosts["lab1"].ssh_target) as remote:
        size = remote.run(["stat", "-c", "%s", f"{host_paths.BACKUP_DIR}/example/{name}"]).stdout.strip()
    assert len(dump) == int(size)


def test_restoring_a_backup_that_does_not_exist_names_the_ones_there(lab: inventory.Inventory) -> None:
    result = djdeploy(lab, "db.restore", "lab1", "--backup", "20000101T000000Z-manual.dump", "--yes")
    assert result.returncode == 1
    assert "has no backup '20000101T000000Z-manual.dump'" in result.stderr
    assert "djdeploy db.backups lab1" in result.stderr
