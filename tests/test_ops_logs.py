"""inv logs: the journalctl command line it sends."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from djdeploy.errors import DjdeployError
from djdeploy.host.sites import MANIFEST_PATH
from djdeploy.ops import logs
from tests import fake_ssh
from tests.fake_ssh import FakeNetwork, Sent
from tests.test_ops_fakes import ADDRESS, EXAMPLE_SITE, Host, run_task, site_entry, use_inventory

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
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    return fake_ssh.install(monkeypatch, {ADDRESS: Host(sites=[EXAMPLE_SITE, site_entry("blog")])})


def journal_call(network: FakeNetwork) -> tuple[list[str], Sent]:
    """The journalctl command that lab1 received, and how."""
    [connection] = network.connections
    assert connection.commands[0] == f"cat {MANIFEST_PATH}"
    [sent] = connection.sent[1:]
    return shlex.split(sent.command), sent


@pytest.mark.parametrize(
    ("given", "sent"),
    [("1h", "-1h"), ("30min", "-30min"), ("2 days", "-2 days"), ("2025-01-31 12:00", "2025-01-31 12:00")],
)
def test_since_takes_spans_and_times(given: str, sent: str) -> None:
    assert logs.since_argument(given) == sent


def test_since_must_say_something() -> None:
    with pytest.raises(DjdeployError, match="--since needs a value"):
        logs.since_argument(" ")


def test_one_site_and_caddy_since_an_hour(monkeypatch: pytest.MonkeyPatch, network: FakeNetwork) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--site", "example", "--since", "1h") == 0
    argv, sent = journal_call(network)
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
    assert (sent.shown, sent.privileged, sent.pty) == (True, True, False)


def test_every_site_and_the_latest_lines_by_default(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--lines", "20") == 0
    argv, _ = journal_call(network)
    assert "gunicorn-example.service" in argv
    assert "gunicorn-blog.service" in argv
    assert argv[-2:] == ["--lines", "20"]


def test_follow_runs_on_a_terminal_so_it_ends_with_the_connection(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    assert run_task(monkeypatch, "logs", "lab1", "--site", "blog", "--follow") == 0
    argv, sent = journal_call(network)
    assert argv[-1] == "--follow"
    assert "gunicorn-example.service" not in argv
    assert sent.pty
