"""The pins the lab reads from a project's poetry.lock, uv.lock or requirements.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from djdeploy.lab import lockfile

PROJECT = Path(__file__).parent / "lab" / "cookiecutter_project"


def test_poetry_lock_gives_the_main_group_only() -> None:
    pins = lockfile.read(PROJECT / "poetry.lock")
    names = [pin.name for pin in pins]
    assert "pytest" not in names
    assert "pluggy" not in names
    assert lockfile.requirements_text(pins).splitlines() == [
        "asgiref==3.13.0",
        "dj-database-url==3.1.2",
        "django==5.2.19",
        "django-environ==0.14.0",
        "gunicorn==27.0.1",
        "packaging==26.3",
        "psycopg2-binary==2.9.13",
        "sqlparse==0.6.1",
    ]


def test_uv_lock_gives_the_project_closure_without_dev_groups(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(
        """version = 1
[[package]]
name = "shop"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "django" }]
[package.dev-dependencies]
dev = [{ name = "pytest" }]
[[package]]
name = "django"
version = "5.2.19"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "asgiref" }, { name = "sqlparse" }]
[[package]]
name = "asgiref"
version = "3.13.0"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "sqlparse"
version = "0.6.1"
source = { registry = "https://pypi.org/simple" }
[[package]]
name = "pytest"
version = "8.4.2"
source = { registry = "https://pypi.org/simple" }
"""
    )
    assert [pin.line for pin in lockfile.read(lock)] == [
        "asgiref==3.13.0",
        "django==5.2.19",
        "sqlparse==0.6.1",
    ]


def test_requirements_pins_with_hashes_and_markers(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# pinned\nDjango==5.2.19 \\\n    --hash=sha256:00\n"
        "psycopg[binary]==3.3.9 ; python_version >= '3.11'\n"
    )
    assert [pin.line for pin in lockfile.read(requirements)] == ["django==5.2.19", "psycopg==3.3.9"]


def test_an_unpinned_requirement_is_named_with_its_line(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("django==5.2.19\ngunicorn>=23\n")
    with pytest.raises(lockfile.LockFileError) as error:
        lockfile.read(requirements)
    assert f"{requirements}:2: 'gunicorn>=23' is not pinned to one version" in error.value.message


def test_a_git_dependency_in_poetry_lock_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "poetry.lock"
    lock.write_text(
        '[[package]]\nname = "shoplib"\nversion = "1.0"\ngroups = ["main"]\n'
        '[package.source]\ntype = "git"\nurl = "https://example.com/shoplib.git"\n'
    )
    with pytest.raises(lockfile.LockFileError) as error:
        lockfile.read(lock)
    assert "shoplib comes from a git source (https://example.com/shoplib.git)" in error.value.message


def test_a_project_without_a_lock_file_is_told_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(lockfile.LockFileError) as error:
        lockfile.find(tmp_path)
    assert "run `poetry lock` or `uv lock`" in error.value.message
