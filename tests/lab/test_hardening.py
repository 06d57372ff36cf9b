"""End to end on a lab host with the example site deployed by `inv deploy`: `systemd-analyze security` rates
every service of the site OK (2.0 or less), and the site still does what sites do in that sandbox: serves
HTTPS through Caddy with gevent workers, writes media under its directory, creates its secret key, migrates
its database, sends mail and calls other servers, reads its extra environment files."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from djdeploy import inventory
from djdeploy.host import paths as host_paths
from djdeploy.host import sites
from djdeploy.ops import scheduled
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote, RemoteResult
from tests.lab.deployed import deployed_lab
from tests.lab.helpers import REPO, inv

pytestmark = pytest.mark.lab

MAX_EXPOSURE = 2.0
SITE = "example"
GUNICORN = f"gunicorn-{SITE}.service"
MIGRATE = f"django-migrate-{SITE}.service"
SECRET_KEY = f"django-secret-key-{SITE}.service"
SCHEDULED = f"django-scheduled-{SITE}-clearsessions.service"
# What makes gunicorn's unit a service rather than a sandbox: left out when the sandbox is run on its own.
NOT_SANDBOX = {"ExecStart", "Type", "NotifyAccess", "KillMode", "Restart", "RemainAfterExit"}
# A stand-in for a mail server on the host, where the sandboxed site sends its mail (Python 3.11's smtpd).
SMTP_UNIT, SMTP_PORT = "djdeploy-test-smtp", 2525
EXTRA_ENV_FILE = f"/run/secrets/{SITE}.env"


@pytest.fixture(scope="module")
def lab() -> Iterator[inventory.Inventory]:
    with deployed_lab(1) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def lab1(lab: inventory.Inventory) -> inventory.Host:
    return lab.hosts["lab1"]


def on_host(host: inventory.Host, *argv: str, check: bool = True) -> RemoteResult:
    with Remote(host.ssh_target) as remote:
        return remote.run(list(argv), check=check, timeout=180)


@pytest.fixture(scope="module")
def site(lab1: inventory.Host) -> dict[str, Any]:
    """The site's entry of the deployed system's manifest."""
    sites = json.loads(
        on_host(lab1, "cat", f"{host_paths.CURRENT_SYSTEM}/{host_paths.SITES_MANIFEST}").stdout
    )
    [entry] = [entry for entry in sites if entry["name"] == SITE]
    return dict(entry)


def exposure(host: inventory.Host, unit: str) -> tuple[float, str]:
    """The overall exposure systemd-analyze gives the unit, and its whole table (to show what is left)."""
    table = on_host(host, "systemd-analyze", "security", "--no-pager", unit).stdout
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", table)
    assert found is not None, table
    return float(found.group(1)), table


def unit_property(host: inventory.Host, unit: str, name: str) -> str:
    return on_host(host, "systemctl", "show", "--value", "-p", name, unit).stdout.strip()


def sandbox_properties(host: inventory.Host) -> list[str]:
    """The [Service] settings of gunicorn's unit that make its sandbox, as `Key=value` lines."""
    text = on_host(host, "systemctl", "cat", GUNICORN).stdout
    service = text.split("[Service]\n", 1)[1].split("\n[", 1)[0]
    lines = [line for line in service.splitlines() if line and not line.startswith("#")]
    # X- keys are switch-to-configuration's (X-StopIfChanged): systemd ignores them, systemd-run refuses them.
    return [
        line
        for line in lines
        if (key := line.split("=", 1)[0]) not in NOT_SANDBOX and not key.startswith("X-")
    ]


def in_sandbox(host: inventory.Host, site: dict[str, Any], code: str) -> str:
    """Run Python `code` with `manage-<site> shell -c` in a transient unit with the sandbox of gunicorn's unit
    (its user, directory, file system, system calls and network): what the site's code may do there."""
    properties = [f"--property={line}" for line in sandbox_properties(host)]
    command = ["systemd-run", "--wait", "--pipe", "--quiet", "--collect", *properties, "--"]
    result = on_host(host, *command, site["manageCommand"], "shell", "-c", textwrap.dedent(code), check=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def test_every_service_of_the_site_is_rated_ok(lab1: inventory.Host, site: dict[str, Any]) -> None:
    services = [unit for unit in site["units"] if unit.endswith(".service")]
    assert services == [SECRET_KEY, MIGRATE, GUNICORN]
    # The scheduled commands' services, which only their timers start.
    services += [job["service"] for job in site["scheduled"]]
    assert services[3:] == [SCHEDULED]
    for unit in services:
        level, table = exposure(lab1, unit)
        print(f"{unit}: {level}")
        assert level <= MAX_EXPOSURE, table


def test_site_serves_https_through_caddy(lab1: inventory.Host) -> None:
    health = probe.request(lab1.address, "example.lab", "/healthz", verify=False)
    assert (health.status, health.body) == (200, "ok")
    # The home page reads the migrated database.
    assert probe.request(lab1.address, "example.lab", "/", verify=False).status == 200


def test_gunicorn_runs_gevent_workers_in_the_sandbox(lab1: inventory.Host) -> None:
    assert unit_property(lab1, GUNICORN, "ActiveState") == "active"
    assert unit_property(lab1, GUNICORN, "NRestarts") == "0"
    status = on_host(lab1, "cat", f"/proc/{unit_property(lab1, GUNICORN, 'MainPID')}/status").stdout
    # A seccomp filter, no capabilities, no way to gain any.
    assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE), status
    assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE), status
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE), status
    journal = on_host(lab1, "journalctl", "-b", "-u", GUNICORN, "--no-pager", "-o", "cat").stdout
    assert "Using worker: gevent" in journal
    assert "Booting worker" in journal


def test_media_written_in_the_sandbox_are_served_by_caddy(lab1: inventory.Host, site: dict[str, Any]) -> None:
    output = in_sandbox(
        lab1,
        site,
        """
        import errno
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage
        print("saved", default_storage.save("hardening/upload.txt", ContentFile(b"uploaded in the sandbox")))
        try:
            open("/var/www/outside-the-site", "w")
        except OSError as error:
            print("outside", errno.errorcode[error.errno])
        """,
    )
    assert "saved hardening/upload.txt" in output
    # The rest of the system is read-only.
    assert "outside EROFS" in output
    # Django sets the mode itself (FILE_UPLOAD_PERMISSIONS); the media directory is the site group's alone.
    owner = on_host(lab1, "stat", "-c", "%U:%G", f"{site['baseDir']}/media/hardening/upload.txt").stdout
    assert owner.strip() == f"{site['user']}:{site['group']}"
    media = probe.request(lab1.address, "example.lab", "/media/hardening/upload.txt", verify=False)
    assert (media.status, media.body) == (200, "uploaded in the sandbox")


def test_the_sandbox_calls_other_servers_over_https(lab1: inventory.Host, site: dict[str, Any]) -> None:
    # With gevent's sockets, resolver and TLS, as a gevent worker makes the call.
    output = in_sandbox(
        lab1,
        site,
        """
        import gevent.socket, gevent.ssl
        context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = gevent.ssl.CERT_NONE
        connection = gevent.socket.create_connection(("localhost", 443), timeout=30)
        with context.wrap_socket(connection, server_hostname="example.lab") as tls:
            tls.sendall(b"GET /healthz HTTP/1.0\\r\\nHost: example.lab\\r\\n\\r\\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        print("answer", answer.split(b"\\r\\n", 1)[0].decode(), answer.rsplit(b"\\r\\n", 1)[-1].decode())
        """,
    )
    assert "answer HTTP/1.0 200 OK ok" in output


@pytest.fixture
def mail_server(lab1: inventory.Host) -> Iterator[str]:
    """A mail server on the host that writes the messages it gets to its journal; yields its unit."""
    on_host(
        lab1,
        "systemd-run",
        f"--unit={SMTP_UNIT}",
        "--collect",
        "/usr/bin/python3",
        "-W",
        "ignore",
        "-u",
        "-m",
        "smtpd",
        "-n",
        "-c",
        "DebuggingServer",
        f"127.0.0.1:{SMTP_PORT}",
    )
    try:
        on_host(
            lab1,
            "sh",
            "-c",
            f"for i in $(seq 50); do ss -ltn | grep -q :{SMTP_PORT} && exit; sleep 0.2; done",
        )
        yield SMTP_UNIT
    finally:
        on_host(lab1, "systemctl", "stop", SMTP_UNIT, check=False)


def test_the_sandbox_sends_mail(lab1: inventory.Host, site: dict[str, Any], mail_server: str) -> None:
    in_sandbox(
        lab1,
        site,
        f"""
        from django.core.mail import get_connection, send_mail
        connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1",
                                    port={SMTP_PORT}, use_tls=False)
        send_mail("sent from the sandbox", "body", "site@example.lab", ["admin@example.lab"],
                  connection=connection)
        """,
    )
    journal = on_host(lab1, "journalctl", "-u", mail_server, "--no-pager", "-o", "cat").stdout
    assert "Subject: sent from the sandbox" in journal


def test_migrations_ran_in_their_sandbox(lab1: inventory.Host, site: dict[str, Any]) -> None:
    assert unit_property(lab1, MIGRATE, "ActiveState") == "active"
    assert unit_property(lab1, MIGRATE, "Result") == "success"
    assert unit_property(lab1, MIGRATE, "PrivateNetwork") == "yes"
    journal = on_host(lab1, "journalctl", "-b", "-u", MIGRATE, "--no-pager", "-o", "cat").stdout
    assert "Running migrations:" in journal
    # Nothing is left to apply.
    on_host(lab1, site["manageCommand"], "migrate", "--check")


def test_a_missing_secret_key_is_created_private(lab1: inventory.Host, site: dict[str, Any]) -> None:
    key_file = site["secretKeyFile"]
    on_host(lab1, "rm", key_file)
    # Also restarts the units that require it: migrations and gunicorn then run with the new key.
    gunicorn_before = unit_property(lab1, GUNICORN, "MainPID")
    on_host(lab1, "systemctl", "restart", SECRET_KEY)
    assert on_host(lab1, "stat", "-c", "%U %a", key_file).stdout.strip() == f"{site['user']} 600"
    assert re.fullmatch(r'SECRET_KEY="[A-Za-z0-9]{64}"\n', on_host(lab1, "cat", key_file).stdout)
    # `systemctl restart` returns once the key is made; the restarts of the other units are still queued.
    on_host(
        lab1,
        "sh",
        "-c",
        'for i in $(seq 600); do [ -z "$(systemctl list-jobs --no-legend)" ] && exit; sleep 0.2; done',
    )
    assert unit_property(lab1, GUNICORN, "ActiveState") == "active"
    assert unit_property(lab1, GUNICORN, "MainPID") != gunicorn_before
    assert probe.request(lab1.address, "example.lab", "/healthz", verify=False).status == 200


def test_a_scheduled_command_runs_by_its_timer_or_by_hand(lab1: inventory.Host, site: dict[str, Any]) -> None:
    timer = SCHEDULED.removesuffix(".service") + ".timer"
    assert unit_property(lab1, timer, "ActiveState") == "active"
    # Started at boot: timers.target wants it (NixOS's timers.target.wants/ link).
    assert timer in unit_property(lab1, "timers.target", "Wants").split()
    assert unit_property(lab1, timer, "TimersCalendar").startswith("{ OnCalendar=*-*-* 00:00:00 ;")
    # A deploy never runs it; `systemctl start` runs it to the end, as the site user with its environment.
    on_host(lab1, "systemctl", "start", SCHEDULED)
    assert unit_property(lab1, SCHEDULED, "Result") == "success"
    assert unit_property(lab1, SCHEDULED, "ExecMainStatus") == "0"
    assert unit_property(lab1, SCHEDULED, "User") == site["user"]
    journal = on_host(lab1, "journalctl", "-u", SCHEDULED, "--no-pager", "-o", "cat").stdout
    assert "Finished" in journal or "Deactivated successfully" in journal, journal
    # What status reads of it.
    [job] = site["scheduled"]
    example = sites.parse_manifest(json.dumps([site]), "test")
    command = scheduled.command(example)
    assert command is not None
    [run] = scheduled.parse(on_host(lab1, "sh", "-c", command).stdout, example)[SITE]
    assert (run.name, run.result, run.exit_status, run.failed) == (job["name"], "success", 0, False)
    assert run.last_started is not None
    assert run.next_run is not None


def extra_env_system(workspace: Path) -> Path:
    """The lab's system of the example site with an extra environment file, as a Nix file to build."""
    expression = workspace / "extra-env.nix"
    expression.write_text(
        textwrap.dedent(
            f"""\
            let
              packages = import {REPO}/nix/lab/packages.nix {{ }};
            in
            import {REPO}/nix/lab/system.nix {{
              hostName = "lab1";
              inherit packages;
              sites.{SITE} = {{
                package = packages.example.site;
                staticFilesPackage = packages.example.static;
                hostname = "example.lab";
                settingsModule = "example_site.config.settings.prod";
                wsgiModule = "example_site.config.wsgi";
                healthCheckPath = "/healthz";
                disableACME = true;
                extraEnvFiles = [ "{EXTRA_ENV_FILE}" ];
              }};
            }}
            """
        )
    )
    return expression


def test_extra_env_files_are_read_in_the_sandbox(
    lab: inventory.Inventory, lab1: inventory.Host, site: dict[str, Any], tmp_path: Path
) -> None:
    # Outside baseDir and the site user's alone, as agenix writes them.
    on_host(lab1, "install", "-d", "-m", "0755", str(Path(EXTRA_ENV_FILE).parent))
    on_host(lab1, "sh", "-c", f"echo 'SANDBOX_CHECK=\"read\"' >{EXTRA_ENV_FILE}")
    on_host(lab1, "chown", f"{site['user']}:{site['group']}", EXTRA_ENV_FILE)
    on_host(lab1, "chmod", "0400", EXTRA_ENV_FILE)
    with_env_file = yaml.safe_load(lab.path.read_text())
    with_env_file["hosts"]["lab1"]["build"] = {"file": str(extra_env_system(tmp_path))}
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text(yaml.safe_dump(with_env_file))
    inv("deploy", "--inventory", str(inventory_path))
    environ = on_host(lab1, "cat", f"/proc/{unit_property(lab1, GUNICORN, 'MainPID')}/environ").stdout
    assert "SANDBOX_CHECK=read" in environ.split("\0")
    assert probe.request(lab1.address, "example.lab", "/healthz", verify=False).status == 200
