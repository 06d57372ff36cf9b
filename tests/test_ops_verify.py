"""inv verify: testinfra over djdeploy's connection, the checks' verdicts, and the task's report."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.host import sites
from djdeploy.ops import verify
from djdeploy.remote import probe
from tests.fake_ssh import Answer, ok
from tests.test_ops_fakes import (
    ADDRESS,
    EXAMPLE_SITE,
    Host,
    connected,
    run_task,
    site_entry,
    use_inventory,
)


def test_testinfra_commands_go_through_the_remote_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, connection = connected(monkeypatch, Host(respond=lambda command: Answer("listing\n", 1)))
    # A command that fails is testinfra's to judge: its exit code comes back, nothing is raised.
    result = verify.testinfra_host(remote).run("ls -l -- %s", "/;echo inject")
    assert (result.stdout, result.rc) == ("listing\n", 1)
    [sent] = connection.sent
    assert (sent.command, sent.privileged) == ("ls -l -- '/;echo inject'", True)


@pytest.mark.parametrize(
    ("answer", "passed", "detail"),
    [
        ("1|example", True, "database example owned by role example"),
        ("1|", False, "no database example"),
        ("0|", False, "no role example"),
        ("1|postgres", False, "database example is owned by postgres, not example"),
    ],
)
def test_database_owned_by_the_role(
    monkeypatch: pytest.MonkeyPatch, answer: str, passed: bool, detail: str
) -> None:
    def psql(command: str) -> Answer:
        argv = shlex.split(command)
        assert argv[:5] == ["runuser", "-u", "postgres", "--", "psql"]
        assert "rolname = 'example'" in argv[-1]
        assert "datname = 'example'" in argv[-1]
        return ok(answer + "\n")

    host = verify.testinfra_host(connected(monkeypatch, Host(respond=psql))[0])
    assert verify._database(host, sites.Database("example", "example")) == (passed, detail)


def search(tmp_path: Path, key_line: str) -> subprocess.CompletedProcess[str]:
    store = tmp_path / "store"
    (store / "abc-package").mkdir(parents=True, exist_ok=True)
    (store / "abc-package" / "settings.py").write_text("DEBUG = False\n")
    key_file = tmp_path / "secret_key"
    key_file.write_text(key_line)
    script = verify.secret_search_script(str(key_file), str(store))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)


def test_secret_search_finds_the_key_only_where_it_is(tmp_path: Path) -> None:
    assert search(tmp_path, 'SECRET_KEY="s3cr3t-value"\n').returncode == 0
    leaked = tmp_path / "store" / "def-config"
    leaked.mkdir()
    (leaked / "env").write_text("SECRET_KEY=s3cr3t-value\n")
    found = search(tmp_path, "export SECRET_KEY='s3cr3t-value'\n")
    assert (found.returncode, found.stdout.strip()) == (1, str(leaked / "env"))


def test_secret_search_refuses_a_file_without_key(tmp_path: Path) -> None:
    # An empty pattern would match every file: the search must not run at all.
    result = search(tmp_path, "SECRET_KEY=\n")
    assert result.returncode == 3
    assert "no SECRET_KEY= line" in result.stdout


def test_certificates_must_name_the_host_and_be_valid() -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    assert verify._certificate_problem(probe.Certificate(("example.test",), later), "example.test") is None
    assert (
        verify._certificate_problem(probe.Certificate(("*.example.test",), later), "www.example.test") is None
    )
    assert "not www.example.test" in str(
        verify._certificate_problem(probe.Certificate(("example.test",), later), "www.example.test")
    )
    earlier = datetime.now(UTC) - timedelta(days=1)
    assert "expired" in str(
        verify._certificate_problem(probe.Certificate(("example.test",), earlier), "example.test")
    )
    assert verify._certificate_problem(None, "example.test") == "no certificate"


def test_verify_task_reports_each_check_and_fails_on_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_inventory(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    results = [
        verify.CheckResult("caddy-active", "", True, "caddy.service is active (running)"),
        verify.CheckResult(
            "gunicorn-active", "example", False, "gunicorn-example.service is inactive (dead)"
        ),
    ]
    monkeypatch.setattr(verify, "verify", lambda host, password=None: results)
    assert run_task(monkeypatch, "verify", "--host", "lab1") == 1
    captured = capsys.readouterr()
    assert "gunicorn-active │ example │ FAIL" in captured.out
    assert "caddy-active    │ -       │ pass" in captured.out
    assert "lab1: gunicorn-active example" in captured.err
    monkeypatch.setattr(verify, "verify", lambda host, password=None: results[:1])
    assert run_task(monkeypatch, "verify", "--on", "@web") == 0


def test_unreachable_host_is_a_failed_check(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    path = tmp_path / "inventory.yaml"
    path.write_text(f"hosts:\n  down: {{address: 127.0.0.1, ssh: {{port: {port}, connect_timeout: 2}}}}\n")
    [result] = verify.verify(inventory.load(path).hosts["down"])
    assert (result.check, result.passed) == ("ssh", False)
    assert "Cannot reach down" in result.detail


def fake_caddy(monkeypatch: pytest.MonkeyPatch, certificate: probe.Certificate | None) -> list[bool]:
    """Caddy's answers for the sites *.test: 200 on the health path, a 301 to the canonical URL on aliases.

    Returns the tls option of each request.
    """
    asked: list[bool] = []

    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        asked.append(bool(options["tls"]))
        scheme = "https" if options["tls"] else "http"
        if hostname.startswith("www."):
            location = f"{scheme}://{hostname.removeprefix('www.')}{path}"
            return probe.Response(301, {"location": location}, "", certificate)
        return probe.Response(200, {}, "ok", certificate)

    monkeypatch.setattr(probe, "request", request)
    return asked


def test_a_port_80_site_is_checked_over_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_caddy(monkeypatch, certificate=None)
    [site] = sites.parse_manifest(json.dumps([site_entry("plain", port=80)]), "of the test")
    results = verify.check_host(connected(monkeypatch, Host())[0], ADDRESS, [site])
    answered = {
        result.check: result for result in results if result.check in {"http", "https", "alias-redirect"}
    }
    assert set(answered) == {"http", "alias-redirect"}
    assert answered["http"] == verify.CheckResult(
        "http", "plain", True, "http://plain.test/healthz answered 200; plain HTTP, no certificate"
    )
    assert answered["alias-redirect"] == verify.CheckResult(
        "alias-redirect", "plain", True, "www.plain.test redirects permanently to http://plain.test"
    )
    assert asked == [False, False]


def test_an_https_site_needs_its_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    [site] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
    fake_caddy(monkeypatch, certificate=None)
    assert verify._site_answers(ADDRESS, site) == (False, "https://example.test/healthz: no certificate")
    until = datetime.now(UTC) + timedelta(days=30)
    asked = fake_caddy(monkeypatch, probe.Certificate(("example.test", "www.example.test"), until))
    assert verify._site_answers(ADDRESS, site) == (
        True,
        f"https://example.test/healthz answered 200; certificate until {until:%Y-%m-%d}",
    )
    assert verify._alias_redirects(ADDRESS, site, "www.example.test")[0]
    assert asked == [True, True]
