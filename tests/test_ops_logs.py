"""inv logs: the journalctl command line it sends."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from djdeploy.errors import DjdeployError
from djdeploy.ops import logs
from djdeploy.tasks import ops
from tests.test_ops_fakes import EXAMPLE_SITE, FakeRemote, Host, run_task, site_entry, use_inventory

EXAMPLE_UNITS = [
    "--unit",
    "django-secret-key-example.service",
    "--unit",
    "django-migrate-example.service",
    "--unit",
    "gunicorn-example.socket",
    "--unit",
    "gunicorn-example.service",
]


@pytest.fixture(autouse=True)
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_inventory(tmp_path, monkeypatch)


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> FakeRemote:
    fake = FakeRemote(Host(sites=[EXAMPLE_SITE, site_entry("blog")]))
    monkeypatch.setattr(ops, "connect", lambda host, password=None: fake)
    return fake


def journal_call(remote: FakeRemote) -> tuple[list[str], dict[str, object]]:
    [call] = [call for call in remote.calls if call.command.startswith("journalctl")]
    return shlex.split(call.command), call.options


@pytest.mark.parametrize(
    ("given", "sent"),
    [("1h", "-1h"), ("30min", "-30min"), ("2 days", "-2 days"), ("2025-01-31 12:00", "2025-01-31 12:00")],
)
def test_since_takes_spans_and_times(given: str, sent: str) -> None:
    assert logs.since_argument(given) == sent


def test_since_must_say_something() -> None:
    with pytest.raises(DjdeployError, match="--since needs a value"):
        logs.since_argument(" ")


def test_one_site_and_caddy_since_an_hour(monkeypatch: pytest.MonkeyPatch, remote: FakeRemote) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--site", "example", "--since", "1h") == 0
    argv, options = journal_call(remote)
    assert argv == [
        "journalctl",
        "--no-pager",
        "--output",
        "short-iso",
        *EXAMPLE_UNITS,
        "--unit",
        "caddy.service",
        "--since",
        "-1h",
    ]
    assert options["stream"] is True
    assert options["privileged"] is True
    assert options["pty"] is False


def test_every_site_and_the_latest_lines_by_default(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote
) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--lines", "20") == 0
    argv, _ = journal_call(remote)
    assert "gunicorn-example.service" in argv
    assert "gunicorn-blog.service" in argv
    assert argv[-2:] == ["--lines", "20"]


def test_follow_runs_on_a_terminal_so_it_ends_with_the_connection(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote
) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--site", "blog", "--follow") == 0
    argv, options = journal_call(remote)
    assert argv[-1] == "--follow"
    assert "gunicorn-example.service" not in argv
    assert options["pty"] is True
