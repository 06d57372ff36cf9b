"""End to end on a deployed lab host: the installed `djdeploy` command, and `inv` with a project's tasks.py,
run from a project directory that holds only its inventory.yaml (and tasks.py), as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.tasks.common import INVENTORY_ENV
from tests.lab.deployed import deployed_lab

pytestmark = pytest.mark.lab

DJDEPLOY = Path(sys.executable).parent / "djdeploy"
INV = Path(sys.executable).parent / "inv"
PROJECT_TASKS = "from djdeploy.tasks import namespace as ns\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[inventory.Inventory]:
    with deployed_lab(1) as loaded:
        yield loaded


@pytest.fixture
def project(lab: inventory.Inventory, tmp_path: Path) -> Path:
    """A directory with nothing but a copy of the lab's inventory, as inventory.yaml."""
    shutil.copy(lab.path, tmp_path / "inventory.yaml")
    return tmp_path


def run_in(project: Path, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """A command run in the project directory without a terminal; tasks read ./inventory.yaml there."""
    environment = {name: value for name, value in os.environ.items() if name != INVENTORY_ENV}
    # Wide enough that Rich wraps no table row or message.
    environment["COLUMNS"] = "300"
    return subprocess.run(
        [str(word) for word in argv],
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_status_reads_the_inventory_of_the_working_directory(project: Path) -> None:
    result = run_in(project, DJDEPLOY, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lab1 · generation 1 of ")
    # The table's row, not the line below it on the site's scheduled command ("example: clearsessions ...").
    [row] = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["example"]]
    assert row[:4] == ["example", "all", "active", "200"]
    assert "  example: clearsessions (daily) has not run since boot; next " in result.stdout


def test_manage_passes_djangos_flags_as_typed(project: Path) -> None:
    checked = run_in(project, DJDEPLOY, "manage", "lab1", "check", "--deploy")
    assert (checked.returncode, checked.stdout) == (0, "System check identified no issues (0 silenced).\n")
    # Only with --deploy does Django list the tags of its deployment checks.
    plain = run_in(project, DJDEPLOY, "manage", "lab1", "check", "--list-tags").stdout.split()
    deploy = run_in(project, DJDEPLOY, "manage", "lab1", "check", "--deploy", "--list-tags").stdout.split()
    assert "async_support" in set(deploy) - set(plain)


def test_manage_exits_with_the_commands_status(project: Path) -> None:
    result = run_in(project, DJDEPLOY, "manage", "lab1", "check", "--deploy", "no_such_app")
    assert result.returncode == 1
    assert "No installed app with label 'no_such_app'" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("program", "tasks_py"), [(DJDEPLOY, None), (INV, PROJECT_TASKS)], ids=["djdeploy", "inv"]
)
def test_showmigrations_plan(project: Path, program: Path, tasks_py: str | None) -> None:
    if tasks_py is not None:
        (project / "tasks.py").write_text(tasks_py)
    result = run_in(project, program, "manage", "lab1", "showmigrations", "--plan")
    assert result.returncode == 0, result.stderr
    assert "[X]  notes.0001_initial" in result.stdout.splitlines()
