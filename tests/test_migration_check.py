"""migration-check.sh between two releases, run for real with the host's tools faked on PATH: nix-store lists
each release's closure (paths side by side in a store directory), runuser answers psql's query."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from djdeploy.host import migration_files

APPLIED = ("auth 0001_initial", "notes 0001_initial")
SETTINGS = 'INSTALLED_APPS = ["django.contrib.auth", "notes"]\n'


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, store = tmp_path / "bin", tmp_path / "store"
    bin_dir.mkdir()
    store.mkdir()
    # Each release's closure: its manage script, its code and its environment wrapper.
    (bin_dir / "nix-store").write_text(
        f"#!/bin/sh\nrelease=${{3##*manage-}}\n"
        f'printf "%s\\n" "$3" {store}/code-$release {store}/env-$release\n'
    )
    (bin_dir / "runuser").write_text(
        "#!/bin/sh\ncase \"$*\" in *ON_ERROR_STOP*) printf '%s\\n' "
        + " ".join(f"'{row}'" for row in APPLIED)
        + " auth notes ;; *) exit 1 ;; esac\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(migration_files, "FILES_CACHE", str(tmp_path / "lists"))
    return store


def release(store: Path, name: str, settings: str = SETTINGS, environment: str = "") -> None:
    """A release whose code ships auth's, notes' and (not installed) sites' first migrations."""
    (store / f"manage-{name}").write_text("#!/bin/sh\n")
    code = store / f"code-{name}" / "lib"
    for app in ("auth", "notes", "sites"):
        (code / app / "migrations").mkdir(parents=True)
        (code / app / "migrations" / "0001_initial.py").write_text("")
    (code / "shop" / "settings").mkdir(parents=True)
    (code / "shop" / "settings" / "prod.py").write_text(settings)
    (store / f"env-{name}").write_text(
        f"#!/bin/sh\nexport DJANGO_SETTINGS_MODULE='shop.settings.prod'\n"
        f"export STATIC_ROOT='{store}/static-{name}'\n{environment}exec \"$@\"\n"
    )


def check(store: Path, new: str, running: str) -> str:
    command = migration_files.check_command(
        str(store / f"manage-{new}"), str(store / f"manage-{running}"), "shop"
    )
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.strip()


def test_the_same_settings_keep_an_app_without_rows_uninstalled(store: Path) -> None:
    release(store, "old")
    release(store, "new", environment=f"export STATIC_ROOT='{store}/static-moved'\n")
    assert check(store, "new", "old") == "applied"


@pytest.mark.parametrize(
    ("settings", "environment"),
    [
        (SETTINGS.replace('"notes"', '"notes", "django.contrib.sites"'), ""),  # sites now installed
        (SETTINGS, "export FEATURES='sites'\n"),  # a variable the settings may read
    ],
)
def test_changed_settings_ask_django(store: Path, settings: str, environment: str) -> None:
    release(store, "old")
    release(store, "new", settings, environment)
    assert check(store, "new", "old") == "unknown"


def test_a_release_whose_settings_module_cannot_be_found_asks_django(store: Path) -> None:
    release(store, "old")
    release(store, "new")
    (store / "env-new").write_text('#!/bin/sh\nexec "$@"\n')
    assert check(store, "new", "old") == "unknown"
