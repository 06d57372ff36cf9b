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

from djdeploy import inventory
from djdeploy.host import migration_files, sites
from djdeploy.host.lock import LockOwner
from djdeploy.host.records import Action, DeployRecord, RecordOutcome
from djdeploy.host.system import Generation
from djdeploy.ops import status, status_view
from djdeploy.remote import probe
from tests import fake_ssh
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

CREATED = 1_760_000_000
SYSTEM = "/nix/store/0000000000000000000000000000000a-nixos-system-lab1"
OLDER_SYSTEM = "/nix/store/0000000000000000000000000000000b-nixos-system-lab1"
PLAN = "[X]  auth.0001_initial\n[ ]  notes.0002_tags\n[ ]  notes.0003_colour"


def deployed(commit: str, finished: str = "") -> DeployRecord:
    """A successful deploy's record by jane@laptop, as far as the fake hosts' deploy logs say."""
    return DeployRecord(
        id="",
        user="jane",
        machine="laptop",
        commit=commit,
        started="",
        system="",
        action=Action.DEPLOY,
        finished=finished,
        outcome=RecordOutcome.SUCCESS,
    )


def framed(sections: dict[str, tuple[str, int]]) -> str:
    """What sections_script prints for these outputs and exit codes."""
    return "".join(
        f"@@djdeploy-begin {name}\n{output}\n@@djdeploy-end {code}\n"
        for name, (output, code) in sections.items()
    )


def answer(
    command: str,
    current: str = SYSTEM,
    lock: str = "",
    plan: tuple[str, int] = (PLAN, 0),
    units: tuple[str, int] = ("active\nactive\nactive\nfailed", 3),
) -> Answer:
    if "@@djdeploy-begin facts" in command:
        deploy = {"user": "jane", "machine": "laptop", "commit": "0123456789abcdef", "outcome": "success"}
        return ok(
            framed(
                {
                    # host.system.FACTS_COMMAND's lines: running system, profile, link, its mtime, lock owner
                    "facts": (f"{current}\n{SYSTEM}\nsystem-7-link\n{CREATED}\n{lock}", 0),
                    "manifest": (json.dumps([]), 0),  # replaced below by the fake host's manifest
                    "deploy": (json.dumps(deploy), 0),
                }
            ),
        )
    if "@@djdeploy-begin units" in command:
        return ok(framed({"units": units, "migrations-example": plan}))
    return Answer(exit_code=127)


class ScriptedHost(Host):
    """The fake host, answering the status scripts, with its manifest in the first one."""

    def __init__(self, manifest: list[dict[str, object]] | None = None, **answers: object) -> None:
        super().__init__()
        if manifest is not None:
            self.sites = manifest
        self.answers = answers

    def answer(self, command: str) -> Answer:
        result = answer(command, **self.answers)  # type: ignore[arg-type]
        if "@@djdeploy-begin facts" in command:
            manifest = super().answer(f"cat {sites.MANIFEST_PATH}").stdout
            return ok(result.stdout.replace("begin manifest\n[]", f"begin manifest\n{manifest}"))
        return result


Asked = list[tuple[str, str, str, object]]


@pytest.fixture
def site_request(monkeypatch: pytest.MonkeyPatch) -> Asked:
    """The requests of the sites (address, hostname, path, tls), each answered 200 as Caddy would."""
    asked: Asked = []

    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        asked.append((address, hostname, path, options["tls"]))
        certificate = probe.Certificate(("example.test",), datetime(2030, 1, 1, tzinfo=UTC))
        return probe.Response(200, {}, "ok", certificate if options["tls"] else None)

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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: Asked
) -> None:
    remote, connection = connected(monkeypatch, ScriptedHost())
    host_status = status.query_host(remote, lab1(tmp_path, monkeypatch))
    # Two scripts, both run as root through sudo.
    assert connection.commands[0] == status.sections_script(status.state_commands())
    assert connection.commands[1].startswith("echo '@@djdeploy-begin units'\n")
    assert [sent.privileged for sent in connection.sent] == [True, True]
    assert host_status.generation == Generation(7, Path(SYSTEM), datetime.fromtimestamp(CREATED, UTC))
    assert host_status.running
    assert host_status.last_deploy == deployed("0123456789abcdef")
    assert host_status.lock is None
    [site] = host_status.sites
    assert [unit.state for unit in site.units] == ["active", "active", "active", "failed"]
    assert site.unapplied_migrations == ("notes.0002_tags", "notes.0003_colour")
    assert (site.http_status, site.http_expected, site.certificate_names) == (200, 200, ("example.test",))
    assert site_request == [(ADDRESS, "example.test", "/healthz", True)]
    assert site.url == "https://example.test/healthz"
    assert not host_status.healthy
    assert host_status.problems == ("gunicorn-example.service is failed",)


def test_lock_other_running_system_and_failing_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: Asked
) -> None:
    owner = json.dumps(
        {"user": "ann", "machine": "ci", "pid": 4, "since": "2030-01-01T00:00:00Z", "command": "x"}
    )
    remote, _ = connected(
        monkeypatch, ScriptedHost(current=OLDER_SYSTEM, lock=owner, plan=("could not connect", 1))
    )
    host_status = status.query_host(remote, lab1(tmp_path, monkeypatch))
    assert host_status.generation is not None
    assert not host_status.running
    assert host_status.lock == LockOwner("ann", "ci", "2030-01-01T00:00:00Z", "x")
    [site] = host_status.sites
    assert site.unapplied_migrations is None
    assert site.migrations_error == "could not connect"


def test_inventory_sites_missing_from_the_system_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: Asked
) -> None:
    host = lab1(tmp_path, monkeypatch)
    wanting = inventory.Host(host.name, host.address, host.ssh, host.build, host.timeouts, sites=("shop",))
    host_status = status.query_host(connected(monkeypatch, ScriptedHost())[0], wanting)
    assert host_status.sites == ()
    assert host_status.missing_sites == ("shop",)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runuser (answering psql with the fingerprint file) and manage-example (counting its runs) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "fingerprint").write_text("19|19\n")
    (tmp_path / "applied").write_text("auth.0001_initial\n")
    (bin_dir / "runuser").write_text(
        f'#!/bin/sh\ncase "$*" in *"app ||"*) cat {tmp_path}/applied ;; '
        f"*ON_ERROR_STOP*) [ -e {tmp_path}/pairs ] || exit 1; cat {tmp_path}/pairs {tmp_path}/modelled ;; "
        f"*) cat {tmp_path}/fingerprint ;; esac\n"
    )
    (tmp_path / "modelled").write_text("")
    # The release's closure, as nix-store lists it: one path, with the migration files of the test's apps.
    release = bin_dir / "release"  # beside the manage script, as store paths lie side by side
    (bin_dir / "nix-store").write_text(f"#!/bin/sh\necho {release}\n")
    (bin_dir / "manage-example").write_text(
        f"#!/bin/sh\necho run >> {tmp_path}/runs\n"
        f'[ -e {tmp_path}/broken ] && {{ echo "database is down" >&2; exit 1; }}\n'
        f"printf '%s\\n' '[X]  auth.0001_initial' '[ ]  notes.0002_tags'\n"
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(status, "MIGRATIONS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(migration_files, "FILES_CACHE", str(tmp_path / "migration-files"))
    return tmp_path


def ship_migrations(root: Path, *labels: str) -> None:
    """Migration files in the release's closure, as APP.NAME, and the same rows applied in its database."""
    for label in labels:
        app, name = label.split(".")
        (root / "bin" / "release" / "lib" / app / "migrations").mkdir(parents=True, exist_ok=True)
        (root / "bin" / "release" / "lib" / app / "migrations" / f"{name}.py").write_text("")
    (root / "pairs").write_text("".join(f"{label.replace('.', ' ')}\n" for label in labels))


def plan_of() -> status.Section:
    [site] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
    script = status.sections_script([("plan", status.migrations_command(site))])
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    return status.parse_sections(output)["plan"]


def test_migration_plan_is_reused_while_code_and_table_are_unchanged(fake_bin: Path) -> None:
    first, second = plan_of(), plan_of()
    assert (
        first
        == second
        == status.Section(
            "[X]  auth.0001_initial\n[ ]  notes.0002_tags\n@@djdeploy-applied\nauth.0001_initial", 0
        )
    )
    assert (fake_bin / "runs").read_text().count("run") == 1
    (fake_bin / "fingerprint").write_text("20|21\n")
    assert plan_of().exit_code == 0
    assert (fake_bin / "runs").read_text().count("run") == 2


def test_migrations_applied_that_the_code_does_not_know_are_a_schema_ahead(fake_bin: Path) -> None:
    (fake_bin / "applied").write_text("auth.0001_initial\nnotes.0003_colour\n")
    [site] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
    no_answer = status._Response(None, "refused", None)
    seen = status._site_status(site, {}, plan_of(), no_answer)
    assert (seen.unapplied_migrations, seen.unknown_applied_migrations) == (
        ("notes.0002_tags",),
        ("notes.0003_colour",),
    )
    assert status_view._migrations(seen).plain == "1 unapplied, 1 ahead of the code"


def test_a_database_with_every_migration_file_applied_needs_no_django(fake_bin: Path) -> None:
    ship_migrations(fake_bin, "auth.0001_initial", "notes.0001_initial")
    (fake_bin / "applied").write_text("auth.0001_initial\nnotes.0001_initial\nnotes.0002_gone\n")
    lists = fake_bin / "migration-files"
    lists.mkdir()
    (lists / "manage-gone").write_text("notes 0001_initial\n")  # of a release no longer in the store
    assert plan_of() == status.Section(
        "[X]  auth.0001_initial\n[X]  notes.0001_initial\n@@djdeploy-applied\n"
        "auth.0001_initial\nnotes.0001_initial\nnotes.0002_gone",
        0,
    )
    assert not (fake_bin / "runs").exists()
    assert sorted(path.name for path in (fake_bin / "cache").iterdir()) == ["example"]
    assert sorted(path.name for path in lists.iterdir()) == ["manage-example"]


@pytest.mark.parametrize(
    ("files", "applied", "modelled"),
    [
        # One not applied yet.
        (("auth.0001_initial", "notes.0001_initial", "notes.0002_tags"), ("auth", "notes"), ""),
        # Rows of an app without files: a label that is not its directory's.
        (("notes.0001_initial",), ("auth", "notes"), ""),
        # An installed app migrated back to zero: no rows, but its content types.
        (("auth.0001_initial", "notes.0001_initial"), ("auth",), "auth\nnotes\n"),
        # Nothing applied at all: no file counts.
        (("auth.0001_initial", "notes.0001_initial"), (), ""),
        # A migration applied whose file has gone (squashed and deleted, or renamed).
        (("auth.0001_initial", "notes.0002_tags"), ("auth", "notes"), ""),
    ],
)
def test_anything_the_migration_files_cannot_tell_asks_django(
    fake_bin: Path, files: tuple[str, ...], applied: tuple[str, ...], modelled: str
) -> None:
    ship_migrations(fake_bin, *files)
    (fake_bin / "pairs").write_text("".join(f"{app} 0001_initial\n" for app in applied))
    (fake_bin / "modelled").write_text(modelled)
    assert plan_of().output.startswith("[X]  auth.0001_initial\n[ ]  notes.0002_tags\n")
    assert (fake_bin / "runs").read_text().count("run") == 1


def test_migration_modules_in_the_project_ask_django(fake_bin: Path) -> None:
    """Migrations in modules of other names (MIGRATION_MODULES) are not in APP/migrations/: only Django
    knows them."""
    ship_migrations(fake_bin, "auth.0001_initial", "notes.0001_initial")
    (fake_bin / "bin" / "release" / "lib" / "settings.py").write_text(
        'MIGRATION_MODULES = {"sites": "shop.sites_migrations"}\n'
    )
    plan_of()
    assert (fake_bin / "runs").read_text().count("run") == 1


def test_a_failing_plan_is_reported_and_not_kept(fake_bin: Path) -> None:
    (fake_bin / "broken").write_text("")
    assert plan_of() == status.Section("database is down", 1)
    (fake_bin / "broken").unlink()
    assert plan_of().exit_code == 0
    assert (fake_bin / "runs").read_text().count("run") == 2


def test_a_deploy_that_migrated_the_site_leaves_a_plan_with_nothing_to_apply(fake_bin: Path) -> None:
    [site] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "of the test")
    since = fake_bin / "started"
    systemctl = fake_bin / "bin" / "systemctl"
    systemctl.write_text(f"#!/bin/sh\ncat {fake_bin}/migrated\n")
    systemctl.chmod(0o755)

    def record_migrated(migrated: str, started: int) -> None:
        (fake_bin / "migrated").write_text(migrated)
        since.write_text(f"{started}\n")
        subprocess.run(["sh", "-c", status.migrated_command([site], str(since))], check=True)

    record_migrated("@1700000000\n", 1700000001)  # migrated before this activation: nothing recorded
    record_migrated("\n", 1700000000)  # never active
    assert not (fake_bin / "cache").exists()
    record_migrated("@1700000005\n", 1700000001)
    assert plan_of() == status.Section("", 0)
    assert not (fake_bin / "runs").exists()  # no Django started
    (fake_bin / "fingerprint").write_text("20|21\n")  # the table changed since: the plan is asked again
    assert plan_of() == status.Section(
        "[X]  auth.0001_initial\n[ ]  notes.0002_tags\n@@djdeploy-applied\nauth.0001_initial", 0
    )


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tarpit: int, site_request: Asked
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"defaults:\n  ssh: {{connect_timeout: 1, known_hosts: {tmp_path}/known_hosts}}\n"
        f"hosts:\n  lab1: {{address: {ADDRESS}}}\n"
        f"  hung: {{address: 127.0.0.1, ssh: {{port: {tarpit}}}}}\n"
        f"  down: {{address: 127.0.0.1, ssh: {{port: {closed_port()}}}}}\n"
    )
    hosts = list(inventory.load(path).hosts.values())

    # lab1 is the fake host; the others are real SSH connections to this machine's loopback.
    fake_ssh.install(monkeypatch, {ADDRESS: ScriptedHost()}, passthrough=True)
    started = time.monotonic()
    lab, hung, down = status.query(hosts)
    assert time.monotonic() - started < 3
    assert lab.reachable
    assert lab.sites[0].http_status == 200
    assert (hung.reachable, hung.error) == (False, "no SSH answer within 1 s")
    assert not down.reachable
    assert down.error is not None
    assert "Cannot reach down" in down.error


def rendered(statuses: list[status.HostStatus], width: int) -> str:
    console = Console(record=True, width=width)
    console.print(status_view.render(statuses))
    return console.export_text()


def test_json_and_table_show_the_same_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: Asked
) -> None:
    reachable = status.query_host(connected(monkeypatch, ScriptedHost())[0], lab1(tmp_path, monkeypatch))
    unreachable = status.HostStatus("lab2", "192.0.2.11", reachable=False, error="Cannot reach lab2")
    data = json.loads(status.to_json([reachable, unreachable]))
    assert data[0]["generation"]["created"] == datetime.fromtimestamp(CREATED, UTC).isoformat()
    assert data[0]["sites"][0]["unapplied_migrations"] == ["notes.0002_tags", "notes.0003_colour"]
    assert (data[0]["healthy"], data[0]["problems"]) == (False, ["gunicorn-example.service is failed"])
    assert data[1] == {
        **data[1],
        "host": "lab2",
        "reachable": False,
        "error": "Cannot reach lab2",
        "sites": [],
        "healthy": False,
        "problems": ["unreachable: Cannot reach lab2"],
    }
    text = rendered([reachable, unreachable], 250)
    assert "deployed by jane@laptop from 0123456789 ·" in text
    assert "gunicorn failed" in text
    assert "2 unapplied" in text
    assert "lab2 · unreachable: Cannot reach lab2" in text


def typical_host(**changes: object) -> status.HostStatus:
    """A host with two sites, as `inv status` shows it most days."""

    def site(name: str, hostname: str, unapplied: tuple[str, ...]) -> status.SiteStatus:
        units = (f"django-secret-key-{name}", f"django-migrate-{name}", f"gunicorn-{name}")
        return status.SiteStatus(
            name=name,
            hostname=hostname,
            url=f"https://{hostname}/healthz",
            tls=True,
            units=(*(status.UnitState(f"{unit}.service", "active") for unit in units),),
            http_status=200,
            http_expected=200,
            http_error=None,
            certificate_names=(hostname,),
            certificate_expires=datetime(2030, 1, 1, tzinfo=UTC),
            unapplied_migrations=unapplied,
            migrations_error=None,
        )

    fields: dict[str, object] = {
        "host": "web-prod-1",
        "address": "web-prod-1.example.com",
        "reachable": True,
        "generation": Generation(142, Path(SYSTEM), datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        "running": True,
        "last_deploy": deployed("0123456789abcdef", "2026-11-23"),
        "sites": (
            site("reactivated_prod", "reactivated.example.com", ()),
            site("generated_docs", "docs.example.com", ("docs.0007_search", "docs.0008_index")),
        ),
        **changes,
    }
    return status.HostStatus(**fields)  # type: ignore[arg-type]


def test_status_reads_on_an_80_column_terminal() -> None:
    text = rendered([typical_host()], 80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in (
        "reactivated_prod",
        "generated_docs",
        "generation 142",
        "deployed by jane@laptop from 0123456789",
        "unlocked",
        "certificate",
        "migrations",
        "2030-01-01",
        "2 unapplied",
    ):
        assert whole in text, text
    site_rows = [line for line in text.splitlines() if "all active" in line]
    assert len(site_rows) == 2
    assert all("200" in row and "2030-01-01" in row for row in site_rows)


def test_long_values_wrap_instead_of_being_cut() -> None:
    down = status.SiteStatus(
        **{
            **typical_host().sites[0].__dict__,
            "units": (status.UnitState("gunicorn-reactivated_prod.service", "failed"),),
            "http_status": None,
            "http_error": "[Errno 111] Connection refused by reactivated.example.com on port 443",
        }
    )
    lock = LockOwner("ann", "ci-runner-17.example.com", "2026-11-23T10:00:00+00:00", "deploy")
    text = rendered([typical_host(sites=(down, typical_host().sites[1]), lock=lock)], 80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    words = " ".join(text.replace("│", " ").split())
    assert "Connection refused by" in words
    assert "gunicorn failed" in words
    assert "locked by ann@ci-runner-17.example.com since 2026-11-23T10:00:00+00:00" in words


def test_units_that_are_not_active_are_grouped_by_state() -> None:
    site = typical_host().sites[0]
    units = (
        status.UnitState("django-secret-key-reactivated_prod.service", "active"),
        status.UnitState("django-migrate-reactivated_prod.service", "failed"),
        status.UnitState("gunicorn-reactivated_prod.socket", "inactive"),
        status.UnitState("gunicorn-reactivated_prod.service", "inactive"),
    )
    cell = status_view._units(status.SiteStatus(**{**site.__dict__, "units": units}))
    assert cell.plain == "migrate failed; socket, gunicorn inactive"


def test_the_commit_of_the_last_deploy_is_abbreviated_but_keeps_its_mark() -> None:
    dirty = deployed("51a599c-dirty", "2026-11-23")
    full = deployed("0123456789abcdef0123456789abcdef01234567-dirty")
    assert "from 51a599c-dirty ·" in rendered([typical_host(last_deploy=dirty)], 80)
    assert "from 0123456789-dirty ·" in rendered([typical_host(last_deploy=full)], 80)


def test_a_wide_terminal_shows_the_host_on_one_line() -> None:
    [heading, *_] = rendered([typical_host()], 200).splitlines()
    assert heading.startswith("web-prod-1 · generation 142 of ")
    assert heading.endswith(" · deployed by jane@laptop from 0123456789 · unlocked")
    created = f"{datetime(2026, 11, 23, 10, 0, tzinfo=UTC).astimezone():%Y-%m-%d %H:%M}"
    # At 80 columns the facts go on as many lines as they need, each fact whole.
    assert [line.rstrip() for line in rendered([typical_host()], 80).splitlines()[:2]] == [
        f"web-prod-1 · generation 142 of {created}",
        "  deployed by jane@laptop from 0123456789 · unlocked",
    ]


def test_what_makes_a_host_down() -> None:
    healthy = typical_host()
    assert (healthy.healthy, healthy.problems) == (True, ())
    site = healthy.sites[0]
    answered_502 = status.SiteStatus(**{**site.__dict__, "http_status": 502})
    not_answering = status.SiteStatus(**{**site.__dict__, "http_status": None, "http_error": "timed out"})
    stopped = status.SiteStatus(
        **{**site.__dict__, "units": (status.UnitState("gunicorn-reactivated_prod.socket", "inactive"),)}
    )
    assert typical_host(sites=(answered_502,)).problems == (
        "https://reactivated.example.com/healthz answered 502, expected 200",
    )
    assert typical_host(sites=(not_answering,)).problems == (
        "https://reactivated.example.com/healthz did not answer: timed out",
    )
    assert typical_host(sites=(stopped,)).problems == ("gunicorn-reactivated_prod.socket is inactive",)
    assert typical_host(missing_sites=("shop",)).problems == (
        "shop is in the inventory, not in the host's system",
    )
    assert typical_host(error="no answer to the status query within 30 s").problems == (
        "not queried: no answer to the status query within 30 s",
    )
    # Shown, but not down: unapplied migrations, a lock, a generation that does not run.
    assert typical_host(
        lock=LockOwner("ann", "ci", "2030-01-01T00:00:00Z", "deploy"),
        generation=Generation(3, Path(OLDER_SYSTEM)),
        running=False,
    ).healthy


def test_a_port_80_site_is_asked_over_plain_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_request: Asked
) -> None:
    manifest = [site_entry("plain", port=80)]
    host = ScriptedHost(manifest, units=("active\nactive\nactive\nactive", 0))
    host_status = status.query_host(connected(monkeypatch, host)[0], lab1(tmp_path, monkeypatch))
    assert site_request == [(ADDRESS, "plain.test", "/healthz", False)]
    [site] = host_status.sites
    assert (site.url, site.tls, site.http_status, site.certificate_expires) == (
        "http://plain.test/healthz",
        False,
        200,
        None,
    )
    assert host_status.healthy
    text = rendered([host_status], 80)
    assert "- (plain HTTP)" in text
    assert "not requested" not in text


def test_status_task_exits_1_when_a_host_is_down_and_prints_everything_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    site_request: Asked,
) -> None:
    use_inventory(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    fake_ssh.install(monkeypatch, {ADDRESS: ScriptedHost(), "192.0.2.11": ScriptedHost()})
    assert run_task(monkeypatch, "status") == 1
    captured = capsys.readouterr()
    assert captured.out.count("generation 7") == 2
    assert "lab1 is down: gunicorn-example.service is failed" in captured.err
    assert "lab2 is down: gunicorn-example.service is failed" in captured.err
    assert run_task(monkeypatch, "status", "--on", "@web", "--json") == 1
    captured = capsys.readouterr()
    [row] = json.loads(captured.out)
    assert (row["host"], row["healthy"], row["problems"]) == (
        "lab2",
        False,
        ["gunicorn-example.service is failed"],
    )
    assert captured.err == ""


def test_status_task_exits_0_when_every_host_is_up(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    site_request: Asked,
) -> None:
    use_inventory(tmp_path, monkeypatch)
    all_active = ("active\nactive\nactive\nactive", 0)
    fake_ssh.install(
        monkeypatch, {ADDRESS: ScriptedHost(units=all_active), "192.0.2.11": ScriptedHost(units=all_active)}
    )
    assert run_task(monkeypatch, "status") == 0
    captured = capsys.readouterr()
    assert captured.out.count("all active") == 2
    assert captured.err == ""
