"""End to end on lab hosts with the example site deployed: inv manage, status, logs and verify, as a user runs
them, including checks that fail when the host is broken on purpose."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.host import paths as host_paths
from djdeploy.remote.ssh import Remote
from tests.lab.deployed import deployed_lab
from tests.lab.helpers import REPO

pytestmark = pytest.mark.lab

CHECKS = {
    "caddy-active",
    "postgresql-active",
    "gunicorn-active",
    "gunicorn-socket",
    "manage-command",
    "manage-check-deploy",
    "secret-key-file",
    "secret-not-in-store",
    "database",
    "https",
    "alias-redirect",
}
MARKERS = [f"/tmp/djdeploy-injected-{number}" for number in range(1, 6)]
# The lab image's account that may use sudo with this password (djdeploy/lab/image.py).
SUDO_USER, SUDO_PASSWORD = "deploy", "lab-deploy-password"


@pytest.fixture(scope="module")
def lab() -> Iterator[inventory.Inventory]:
    with deployed_lab(2) as loaded:
        yield loaded


def environment(lab: inventory.Inventory) -> dict[str, str]:
    # Wide enough that Rich wraps no table row or message.
    return {
        **os.environ,
        "DJDEPLOY_INVENTORY": str(lab.path),
        "COLUMNS": "300",
        "DJDEPLOY_SUDO_PASSWORD": SUDO_PASSWORD,
    }


def inv(lab: inventory.Inventory, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`inv ARGS` without a terminal, against the lab's inventory."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO,
        env=environment(lab),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def on_host(lab: inventory.Inventory, name: str, *argv: str) -> str:
    with Remote(lab.hosts[name].ssh_target) as remote:
        return remote.run(list(argv), timeout=60).stdout


def write_on_host(lab: inventory.Inventory, name: str, path: str, text: str) -> None:
    with Remote(lab.hosts[name].ssh_target) as remote:
        remote.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "write", path], input_text=text)


def failed_checks(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The failures that inv verify lists on its last line: {"lab2: database example", ...}."""
    summary = result.stderr.strip().splitlines()[-1]
    return set(summary.split("failed: ", 1)[1].split(", "))


# inv manage


def test_manage_runs_a_command_with_flags(lab: inventory.Inventory) -> None:
    result = inv(lab, "manage", "lab1", "showmigrations", "--", "--plan")
    assert result.returncode == 0, result.stderr
    assert "[X]  notes.0001_initial" in result.stdout


def test_manage_exits_with_the_commands_status(lab: inventory.Inventory) -> None:
    assert inv(lab, "manage", "lab1", "shell", "--", "-c", "import sys; sys.exit(7)").returncode == 7
    assert inv(lab, "manage", "lab1", "migrate").returncode == 0


def test_manage_arguments_are_data_never_commands(lab: inventory.Inventory) -> None:
    text = f"; touch {MARKERS[0]} $(touch {MARKERS[1]}) `touch {MARKERS[2]}` ' \" | & > {MARKERS[3]}"
    # Two lines of Python: the newline reaches Django inside the argument too.
    code = f"import os\nprint(os.getuid() != 0, {text!r})"
    result = inv(lab, "manage", "lab1", "shell", "--", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"True {text}"
    label = f"; touch {MARKERS[4]}"
    checked = inv(lab, "manage", "lab1", "check", "--", label)
    assert checked.returncode == 1
    assert f"No installed app with label '{label}'" in checked.stdout + checked.stderr
    assert on_host(lab, "lab1", "sh", "-c", "ls /tmp/djdeploy-injected-* 2>/dev/null || true") == ""


def test_manage_gives_a_terminal_to_interactive_commands(lab: inventory.Inventory) -> None:
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(
            sys.executable, [sys.executable, "-m", "invoke", "manage", "lab1", "shell"], environment(lab)
        )
    output = b""
    deadline = time.monotonic() + 120
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child exited and closed the terminal
            break
        output += chunk
        if b">>> " in output and not sent:
            os.write(terminal, b"import os; print('tty', os.isatty(0), 6 * 7)\nexit()\n")
            sent = True
    _, wait_status = os.waitpid(pid, 0)
    assert sent, output.decode(errors="replace")
    assert b"tty True 42" in output
    assert os.waitstatus_to_exitcode(wait_status) == 0


# inv status


@pytest.fixture
def with_unreachable_host(lab: inventory.Inventory, tmp_path: Path) -> inventory.Inventory:
    """The lab's inventory plus a host nothing answers for, on a closed loopback port."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    path = tmp_path / "inventory.yaml"
    path.write_text(
        lab.path.read_text()
        + f"  gone:\n    address: 127.0.0.1\n    ssh: {{port: {port}, connect_timeout: 2}}\n"
    )
    return inventory.load(path)


def test_status_shows_every_host_and_site(with_unreachable_host: inventory.Inventory) -> None:
    started = time.monotonic()
    result = inv(with_unreachable_host, "status", "--json")
    assert time.monotonic() - started < 30
    # The unreachable host makes it exit 1.
    assert result.returncode == 1, result.stderr
    rows = {row["host"]: row for row in json.loads(result.stdout)}
    assert (rows["gone"]["reachable"], rows["gone"]["healthy"]) == (False, False)
    assert "Cannot reach gone" in rows["gone"]["error"]
    for name in ("lab1", "lab2"):
        row = rows[name]
        assert (row["reachable"], row["healthy"]) == (True, True)
        assert row["generation"]["number"] == 1
        assert row["running"] is True
        [site] = row["sites"]
        assert {unit["state"] for unit in site["units"]} == {"active"}
        assert (site["http_status"], site["http_expected"]) == (200, 200)
        assert "example.lab" in site["certificate_names"]
        assert site["unapplied_migrations"] == []
        [clearsessions] = site["scheduled"]
        assert (clearsessions["name"], clearsessions["on_calendar"]) == ("clearsessions", "daily")
        assert clearsessions["next_run"] is not None
    table = inv(with_unreachable_host, "status")
    assert "gone · unreachable: Cannot reach gone" in table.stdout
    assert table.stdout.count("all active") == 2
    assert table.stdout.count("example: clearsessions (daily) ") == 2
    assert "gone is down: unreachable: Cannot reach gone" in table.stderr
    assert inv(with_unreachable_host, "status", "--host", "lab1,lab2").returncode == 0


def test_status_shows_the_deploy_lock_and_the_last_deploy(lab: inventory.Inventory) -> None:
    owner = {"user": "ann", "machine": "ci", "pid": 1, "since": "2030-01-01T00:00:00Z", "command": "deploy"}
    entry = {
        "id": "d1",
        "user": "jane",
        "machine": "laptop",
        "commit": "0123456789abcdef",
        "outcome": "success",
    }
    # As inv deploy leaves them: a held lock, and a log whose last line is the last deploy.
    write_on_host(lab, "lab2", host_paths.LOCK_OWNER, json.dumps(owner))
    log = [json.dumps({**entry, "outcome": "failed"}), json.dumps(entry)]
    write_on_host(lab, "lab2", host_paths.DEPLOY_LOG, "\n".join(log) + "\n")
    try:
        [row] = json.loads(inv(lab, "status", "--host", "lab2", "--json").stdout)
        assert row["lock"] == {
            **{key: owner[key] for key in ("user", "machine", "since", "command")},
            "id": "",
        }
        assert (row["last_deploy"]["user"], row["last_deploy"]["commit"]) == ("jane", "0123456789abcdef")
        assert "jane@laptop from 0123456789" in inv(lab, "status", "--host", "lab2").stdout
    finally:
        on_host(lab, "lab2", "rm", "-rf", host_paths.LOCK_DIR, host_paths.DEPLOY_LOG)
    [row] = json.loads(inv(lab, "status", "--host", "lab2", "--json").stdout)
    assert (row["lock"], row["last_deploy"]) == (None, None)


def test_a_deploy_leaves_status_a_plan_with_nothing_to_apply(lab: inventory.Inventory) -> None:
    """The deploy migrated the site: the first status reads that from the host's cache, starting no Django."""
    cache = f"{host_paths.STATUS_CACHE}/example"
    # The confirmation writes it in the background: within seconds of the deploy's end.
    cached = on_host(
        lab,
        "lab1",
        "sh",
        "-c",
        f"for i in $(seq 50); do [ -s {cache} ] && break; sleep 0.1; done; cat {cache}",
    )
    key, *plan = cached.split("\n")
    assert key.split()[-1].count("|") == 1  # the migrations table's fingerprint: count|max(id)
    assert plan == ["", ""]
    [row] = json.loads(inv(lab, "status", "--host", "lab1", "--json").stdout)
    assert row["sites"][0]["unapplied_migrations"] == []
    assert on_host(lab, "lab1", "cat", cache) == cached


def test_status_sees_unapplied_migrations(lab: inventory.Inventory) -> None:
    assert inv(lab, "manage", "lab2", "migrate", "--", "notes", "zero").returncode == 0
    try:
        [row] = json.loads(inv(lab, "status", "--host", "lab2", "--json").stdout)
        assert row["sites"][0]["unapplied_migrations"] == ["notes.0001_initial"]
    finally:
        assert inv(lab, "manage", "lab2", "migrate").returncode == 0
    [row] = json.loads(inv(lab, "status", "--host", "lab2", "--json").stdout)
    assert row["sites"][0]["unapplied_migrations"] == []


# inv logs


def test_logs_show_the_sites_units_and_caddy(lab: inventory.Inventory) -> None:
    result = inv(lab, "logs", "lab1", "--since", "1h")
    assert result.returncode == 0, result.stderr
    assert "gunicorn-example" in result.stdout
    assert "caddy" in result.stdout.lower()
    assert inv(lab, "logs", "lab1", "--site", "nope").returncode == 1


def test_logs_follow_streams_new_entries_until_stopped(lab: inventory.Inventory) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "invoke", "logs", "lab1", "--follow", "--lines", "0"],
        cwd=REPO,
        env=environment(lab),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout or []), daemon=True)
    reader.start()
    try:
        time.sleep(3)  # journalctl is following by then
        on_host(lab, "lab1", "systemctl", "restart", "gunicorn-example.service")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("Started gunicorn-example" in line for line in lines):
            time.sleep(0.5)
        assert any("Started gunicorn-example" in line for line in lines), "".join(lines)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(timeout=30)
    # The host's journalctl ends with the connection (it ran on a terminal that hung up).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and on_host(lab, "lab1", "sh", "-c", "pgrep -x journalctl || true"):
        time.sleep(0.5)
    assert on_host(lab, "lab1", "sh", "-c", "pgrep -x journalctl || true") == ""


# inv verify


def test_verify_passes_every_check_on_a_deployed_host(lab: inventory.Inventory) -> None:
    result = inv(lab, "verify", "--host", "lab1")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    assert {row.split("│")[1].strip() for row in rows} >= CHECKS
    assert "FAIL" not in result.stdout


def test_verify_reports_a_stopped_gunicorn(lab: inventory.Inventory) -> None:
    on_host(lab, "lab2", "systemctl", "stop", "gunicorn-example.service")
    try:
        result = inv(lab, "verify", "--host", "lab2")
    finally:
        on_host(lab, "lab2", "systemctl", "start", "gunicorn-example.service")
    assert result.returncode == 1
    assert failed_checks(result) == {"lab2: gunicorn-active example"}


def test_verify_reports_a_world_readable_secret_key(lab: inventory.Inventory) -> None:
    on_host(lab, "lab2", "chmod", "0644", "/var/www/example/secret_key")
    try:
        result = inv(lab, "verify", "--host", "lab2")
    finally:
        on_host(lab, "lab2", "chmod", "0600", "/var/www/example/secret_key")
    assert result.returncode == 1
    assert failed_checks(result) == {"lab2: secret-key-file example"}


def test_verify_reports_a_dropped_database(lab: inventory.Inventory) -> None:
    psql = ["runuser", "-u", "postgres", "--", "psql", "-X", "-c"]
    on_host(lab, "lab2", *psql, "DROP DATABASE example WITH (FORCE)")
    try:
        result = inv(lab, "verify", "--host", "lab2")
    finally:
        on_host(lab, "lab2", *psql, "CREATE DATABASE example OWNER example")
        on_host(lab, "lab2", "systemctl", "restart", "django-migrate-example.service")
    assert result.returncode == 1
    # The site's health check needs its database too.
    assert failed_checks(result) == {"lab2: database example", "lab2: https example"}
    assert inv(lab, "verify", "--host", "lab2").returncode == 0


# Through sudo


@pytest.fixture
def as_sudo_user(lab: inventory.Inventory, tmp_path: Path) -> inventory.Inventory:
    """The lab's inventory, logging in as an account that runs privileged commands through sudo."""
    path = tmp_path / "inventory.yaml"
    path.write_text(lab.path.read_text().replace("user: root", f"user: {SUDO_USER}\n    sudo: true"))
    loaded = inventory.load(path)
    assert loaded.hosts["lab1"].ssh.sudo
    return loaded


def test_a_sudo_user_gets_the_same_answers(as_sudo_user: inventory.Inventory) -> None:
    [row] = json.loads(inv(as_sudo_user, "status", "--host", "lab1", "--json").stdout)
    assert row["generation"]["number"] == 1
    assert row["lock"] is None
    assert row["sites"][0]["unapplied_migrations"] == []
    managed = inv(as_sudo_user, "manage", "lab1", "shell", "--", "-c", "import os; print(os.getuid() > 0)")
    assert (managed.returncode, managed.stdout.splitlines()[-1]) == (0, "True")
    logs = inv(as_sudo_user, "logs", "lab1", "--lines", "5")
    assert (logs.returncode, len(logs.stdout.splitlines())) == (0, 5)
    verified = inv(as_sudo_user, "verify", "--host", "lab1")
    assert verified.returncode == 0, verified.stdout + verified.stderr
