"""The db tasks' commands on the host (db.sh with its arguments) and what they make of the answers."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime

import pytest

from djdeploy.host import sites
from djdeploy.ops import db
from tests.fake_ssh import Answer, ok
from tests.test_ops_fakes import EXAMPLE_SITE, Host, connected, site_entry

[SITE] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
LISTING = (
    "20261203T101500Z-manual.dump 1200000 1764756900\n"
    "notes.txt 10 1764756900\n"  # not a dump djdeploy makes: ignored
    "20261201T080000Z-before-g12.dump 900000 1764576000\n"
)


def script_words(command: str) -> list[str]:
    """db.sh's action and arguments in a command line that runs it."""
    words = shlex.split(command)
    assert words[:4] == ["sh", "-c", db.SCRIPT, "djdeploy-db"]
    return words[4:]


def test_a_backup_dumps_the_sites_database_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, connection = connected(
        monkeypatch, Host(respond=lambda command: ok("20261203T101500Z-manual.dump 1200000\n"))
    )
    made = db.backup(remote, SITE, "manual")
    [sent] = connection.sent
    assert script_words(sent.command) == ["backup", "/var/backup/djdeploy/example", "example", "manual"]
    assert sent.privileged
    assert made == db.Backup(
        "example",
        "20261203T101500Z-manual.dump",
        1200000,
        datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
        "manual",
    )


def test_backups_are_listed_oldest_first_and_the_newest_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, _ = connected(monkeypatch, Host(respond=lambda command: ok(LISTING)))
    assert [backup.label for backup in db.backups(remote, SITE)] == ["before-g12", "manual"]
    assert db.find(remote, SITE, None).name == "20261203T101500Z-manual.dump"
    with pytest.raises(
        db.BackupError, match=re.escape("has no backup 'x.dump'. Its backups: 20261201T080000Z")
    ):
        db.find(remote, SITE, "x.dump")


def test_a_site_without_a_backup_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, _ = connected(monkeypatch, Host(respond=lambda command: Answer()))
    with pytest.raises(db.BackupError, match=re.escape("`djdeploy db.backup lab1 --site example`")):
        db.find(remote, SITE, None)


def test_a_restore_stops_and_starts_only_the_sites_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, connection = connected(monkeypatch, Host())
    db.restore(
        remote, SITE, db.Backup("example", "20261203T101500Z-manual.dump", 1, datetime.now(UTC), "manual")
    )
    [sent] = connection.sent
    assert script_words(sent.command) == [
        "restore",
        "/var/backup/djdeploy/example",
        "20261203T101500Z-manual.dump",
        "example",
        "example",
        "gunicorn-example.socket",
        "gunicorn-example.service",
    ]


def test_a_database_elsewhere_cannot_be_dumped_here(monkeypatch: pytest.MonkeyPatch) -> None:
    [elsewhere] = sites.parse_manifest(json.dumps([site_entry("shop", database=None)]), "x")
    remote, connection = connected(monkeypatch, Host())
    with pytest.raises(db.BackupError, match="back it up where it lives"):
        db.backup(remote, elsewhere, "manual")
    assert connection.sent == []
