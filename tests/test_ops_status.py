"""inv status: the host scripts, what is read from their answers, parallel queries and unreachable hosts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from djdeploy import inventory, probe, sites, status
from djdeploy.ssh import Remote, RemoteResult, SshTarget
from djdeploy.tasks import ops
from tests.test_ops_fakes import ADDRESS, EXAMPLE_SITE, FakeRemote, Host, ok, run_task, use_inventory

CREATED = 1_760_000_000
SYSTEM = "/nix/store/0000000000000000000000000000000a-nixos-system-lab1"
OLDER_SYSTEM = "/nix/store/0000000000000000000000000000000b-nixos-system-lab1"
PLAN = "[X]  auth.0001_initial\n[ ]  notes.0002_tags\n[ ]  notes.0003_colour"


def framed(sections: dict[str, tuple[str, int]]) -> str:
    """What sections_script prints for these outputs and exit codes."""
    return "".join(
        f"@@djdeploy-begin {name}\n{output}\n@@djdeploy-end {code}\n"
        for name, (output, code) in sections.items()
    )


def answer(
    command: str, current: str = SYSTEM, lock: str = "", plan: tuple[str, int] = (PLAN, 0)
) -> RemoteResult:
    if "@@djdeploy-begin profile" in command:
        deploy = {"user": "jane", "machine": "laptop", "commit": "0123456789abcdef", "outcome": "success"}
        return ok(
            command,
            framed(
                {
                    "profile": (f"system-7-link\n{CREATED}\n{SYSTEM}", 0),
                    "current": (current, 0),
                    "manifest": (json.dumps([]), 0),  # replaced below by the fake host's manifest
                    "lock": (lock, 0),
                    "deploy": (json.dumps(deploy), 0),
                }
            ),
        )
    if "@@djdeploy-begin units" in command:
        return ok(
            command, framed({"units": ("active\nactive\nactive\nfailed", 3), "migrations-example": plan})
        )
    return ok(command, exit_code=127)


class ScriptedHost(Host):
    """The fake host, answering the status scripts, with its manifest in the first one."""

    def __init__(self, **answers: object) -> None:
        super().__init__()
        self.answers = answers

    def respond(self, command: str) -> RemoteResult:
        result = answer(command, **self.answers)  # type: ignore[arg-type]
        if "@@djdeploy-begin profile" in command:
            manifest = super().respond(f"cat {sites.MANIFEST_PATH}").stdout
            stdout = result.stdout.replace("begin manifest\n[]", f"begin manifest\n{manifest}")
            return RemoteResult(command, 0, stdout, "")
        return result


@pytest.fixture
def site_request(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    asked: list[tuple[str, str, str]] = []

    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        asked.append((address, hostname, path))
        certificate = probe.Certificate(("example.test",), datetime(2030, 1, 1, tzinfo=UTC))
        return probe.Response(200, {}, "ok", certificate)

    monkeypatch.setattr(probe, "request", request)
    return asked


def lab1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> inventory.Host:
    return inventory.load(use_inventory(tmp_path, monkeypatch)).hosts["lab1"]


def test_sections_keep_each_commands_output_and_exit_status() -> None:
    script = status.sections_script(
        [
            ("lines", "echo one; echo two"),
            ("unterminated", "printf 'no newline'"),
            ("failing", "echo oops >&2; exit 3"),
            ("silent", "true"),
        ]
    )
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert status.parse_sections(output) == {
        "lines": status.Section("one\ntwo", 0),
        "unterminated": status.Section("no newline", 0),
        "failing": status.Section("oops", 3),
        "silent": status.Section("", 0),
    }


def test_host_status_from_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: list[tuple[str, str, str]]
) -> None:
    remote = FakeRemote(ScriptedHost())
    host_status = status.query_host(remote, lab1(tmp_path, monkeypatch))
    assert len(remote.calls) == 2
    assert all(call.options["privileged"] for call in remote.calls)
    assert host_status.generation == status.Generation(7, datetime.fromtimestamp(CREATED, UTC), SYSTEM, True)
    assert host_status.last_deploy == status.LastDeploy("jane", "laptop", "0123456789abcdef", "?", "success")
    assert host_status.lock is None
    [site] = host_status.sites
    assert [unit.state for unit in site.units] == ["active", "active", "active", "failed"]
    assert site.unapplied_migrations == ("notes.0002_tags", "notes.0003_colour")
    assert (site.http_status, site.http_expected, site.certificate_names) == (200, 200, ("example.test",))
    assert site_request == [(ADDRESS, "example.test", "/healthz")]


def test_lock_other_running_system_and_failing_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: list[tuple[str, str, str]]
) -> None:
    owner = json.dumps(
        {"user": "ann", "machine": "ci", "pid": 4, "since": "2030-01-01T00:00:00Z", "command": "x"}
    )
    remote = FakeRemote(ScriptedHost(current=OLDER_SYSTEM, lock=owner, plan=("could not connect", 1)))
    host_status = status.query_host(remote, lab1(tmp_path, monkeypatch))
    assert host_status.generation is not None
    assert not host_status.generation.running
    assert host_status.lock == status.Lock("ann", "ci", "2030-01-01T00:00:00Z", "x")
    [site] = host_status.sites
    assert site.unapplied_migrations is None
    assert site.migrations_error == "could not connect"


def test_inventory_sites_missing_from_the_system_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: list[tuple[str, str, str]]
) -> None:
    host = lab1(tmp_path, monkeypatch)
    wanting = inventory.Host(host.name, host.address, host.ssh, host.build, host.timeouts, sites=("shop",))
    host_status = status.query_host(FakeRemote(ScriptedHost()), wanting)
    assert host_status.sites == ()
    assert host_status.missing_sites == ("shop",)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runuser (answering psql with the fingerprint file) and manage-example (counting its runs) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "fingerprint").write_text("19|19\n")
    (bin_dir / "runuser").write_text(f"#!/bin/sh\ncat {tmp_path}/fingerprint\n")
    (bin_dir / "manage-example").write_text(
        f"#!/bin/sh\necho run >> {tmp_path}/runs\n"
        f'[ -e {tmp_path}/broken ] && {{ echo "database is down" >&2; exit 1; }}\n'
        f"printf '%s\\n' '[X]  auth.0001_initial' '[ ]  notes.0002_tags'\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(status, "MIGRATIONS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def plan_of() -> status.Section:
    [site] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
    script = status.sections_script([("plan", status.migrations_command(site))])
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    return status.parse_sections(output)["plan"]


def test_migration_plan_is_reused_while_code_and_table_are_unchanged(fake_bin: Path) -> None:
    first, second = plan_of(), plan_of()
    assert first == second == status.Section("[X]  auth.0001_initial\n[ ]  notes.0002_tags", 0)
    assert (fake_bin / "runs").read_text().count("run") == 1
    (fake_bin / "fingerprint").write_text("20|21\n")
    assert plan_of().exit_code == 0
    assert (fake_bin / "runs").read_text().count("run") == 2


def test_a_failing_plan_is_reported_and_not_kept(fake_bin: Path) -> None:
    (fake_bin / "broken").write_text("")
    assert plan_of() == status.Section("database is down", 1)
    (fake_bin / "broken").unlink()
    assert plan_of().exit_code == 0
    assert (fake_bin / "runs").read_text().count("run") == 2


@pytest.fixture
def tarpit() -> Iterator[int]:
    """A port that accepts connections and never says anything, as a hung host does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def test_unreachable_hosts_are_rows_and_do_not_hold_up_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tarpit: int, site_request: list[tuple[str, str, str]]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"defaults:\n  ssh: {{connect_timeout: 1, known_hosts: {tmp_path}/known_hosts}}\n"
        f"hosts:\n  lab1: {{address: {ADDRESS}}}\n"
        f"  hung: {{address: 127.0.0.1, ssh: {{port: {tarpit}}}}}\n"
        f"  down: {{address: 127.0.0.1, ssh: {{port: {closed_port()}}}}}\n"
    )
    hosts = list(inventory.load(path).hosts.values())

    def connection(target: SshTarget, password: str | None = None) -> Remote:
        return FakeRemote(ScriptedHost()) if target.name == "lab1" else Remote(target, password)

    monkeypatch.setattr(status, "Remote", connection)
    started = time.monotonic()
    lab, hung, down = status.query(hosts)
    assert time.monotonic() - started < 3
    assert lab.reachable
    assert lab.sites[0].http_status == 200
    assert (hung.reachable, hung.error) == (False, "no SSH answer within 1 s")
    assert not down.reachable
    assert down.error is not None
    assert "Cannot reach down" in down.error


def test_json_and_table_show_the_same_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: list[tuple[str, str, str]]
) -> None:
    reachable = status.query_host(FakeRemote(ScriptedHost()), lab1(tmp_path, monkeypatch))
    unreachable = status.HostStatus("lab2", "192.0.2.11", reachable=False, error="Cannot reach lab2")
    data = json.loads(status.to_json([reachable, unreachable]))
    assert data[0]["generation"]["created"] == datetime.fromtimestamp(CREATED, UTC).isoformat()
    assert data[0]["sites"][0]["unapplied_migrations"] == ["notes.0002_tags", "notes.0003_colour"]
    assert data[1] == {
        **data[1],
        "host": "lab2",
        "reachable": False,
        "error": "Cannot reach lab2",
        "sites": [],
    }
    console = Console(record=True, width=250)
    console.print(ops._status_table([reachable, unreachable]))
    text = console.export_text()
    assert "jane@laptop from 0123456789" in text
    assert "gunicorn failed" in text
    assert "2 unapplied" in text
    assert "no: Cannot reach lab2" in text


def test_status_task_prints_json(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    site_request: list[tuple[str, str, str]],
) -> None:
    use_inventory(tmp_path, monkeypatch)
    monkeypatch.setattr(
        status, "Remote", lambda target, password=None: FakeRemote(ScriptedHost(), target.name)
    )
    assert run_task(monkeypatch, "status", "--on", "@web", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["host"] == "lab2"
