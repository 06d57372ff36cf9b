"""The exact commands each deploy step runs, with the SSH and process boundary faked."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit
from rich.console import Console

from djdeploy.deploy import (
    build,
    fleet,
    health,
    host_run,
    interrupt,
    migrations,
    nix,
    schema,
    supervisor,
    toplevel,
    unlock,
)
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Outcome, Result
from djdeploy.errors import DjdeployError
from djdeploy.host import lock, records, sites
from djdeploy.host import paths as host_paths
from djdeploy.host import system as host_system
from djdeploy.inventory import BuildSpec, Host, Timeouts
from djdeploy.ops import status
from djdeploy.remote import process
from djdeploy.remote.ssh import Remote, SshSettings, SshTarget
from djdeploy.tasks import deploy as deploy_tasks
from tests import fake_ssh
from tests.fake_ssh import Answer, FakeConnection, FakeHost, FakeNetwork, ok

SITE = sites.Site(
    name="example",
    hostname="example.test",
    aliases=(),
    port=443,
    auth=False,
    health_path="/healthz",
    health_status=200,
    units=("gunicorn-example.service",),
    manage_command="manage-example",
    user="example",
    group="example",
    secret_key_file="/var/www/example/secret_key",
    socket_path="/run/gunicorn-example/gunicorn.sock",
    database=sites.Database("example", "example"),
)
# SITE as the sites manifest of a system describes it.
MANIFEST_ENTRY = {
    "name": "example",
    "hostname": "example.test",
    "aliases": [],
    "port": 443,
    "auth": False,
    "healthCheck": {"path": "/healthz", "status": 200},
    "units": ["gunicorn-example.service"],
    "manageCommand": "manage-example",
    "user": "example",
    "group": "example",
    "secretKeyFile": "/var/www/example/secret_key",
    "socketPath": "/run/gunicorn-example/gunicorn.sock",
    "database": {"name": "example", "owner": "example"},
}
OLD = Path("/nix/store/" + "a" * 32 + "-lab-system-old")
NEW = Path("/nix/store/" + "b" * 32 + "-lab-system-new")
# When the fake host made its current generation link.
CREATED = 1760000000


def started_supervisor(command: str) -> list[str]:
    """The systemd-run command line of the command that starts the supervisor."""
    return shlex.split(command[command.index("systemd-run ") :])


def writes_the_log_or_unlocks(command: str) -> bool:
    """Whether a command appends to the deploy log or removes the lock (the supervisor's job)."""
    return ">> /var/lib/djdeploy/deploys.jsonl" in command or "rm -rf /run/djdeploy/lock" in command


def waits_for_the_switch(command: str) -> bool:
    """Whether a wait command stops at the state 'switched' (not only at final ones like 'not-switched')."""
    return re.search(r"for w in [^;]*(?<![-\w])switched\b", command) is not None


ACTIVATION_ID = "20261123T000000-abcdef"


def confirms(activation_dir: str) -> str:
    """The confirmation, which also records for `status` that the activation migrated the site."""
    migrated = status.migrated_command([SITE], f"{activation_dir}/started")
    return f"touch {activation_dir}/confirmed || exit; {{ {migrated}\n}} </dev/null >/dev/null 2>&1 &"


@dataclass
class DeployHost(FakeHost):
    """A host as a deploy sees it over SSH: it answers the deploy's commands, and its state follows them.

    It is also the list of connections opened to it, in order (the deploy's, the confirmation's, ...).
    """

    network: FakeNetwork = field(default_factory=FakeNetwork)
    current: Path = OLD
    generation: int = 1
    lock_owner: str = ""
    # What the supervisor reaches instead of "switched" (a final state), and why; then after the confirmation.
    state_after_start: str = "switched"
    reason: str = ""
    state_after_confirm: str = "confirmed"
    boot_status: int = 0
    # The units a failed switch named, with the end of their journal.
    unit_journals: dict[str, str] = field(default_factory=dict)
    deploy_log: list[dict[str, object]] = field(default_factory=list)
    # Drop the connection while a wait for the supervisor runs, this many times.
    waits_dropped: int = 0
    # Refuse the rejection of an activation, with this message.
    reject_refused: str = ""
    # Whether the activation of ACTIVATION_ID was ever started (its folder exists).
    activation_started: bool = True
    # A test's own answers: the output of commands that start with a key.
    answers: dict[str, str] = field(default_factory=dict)
    # The new release's migration plan (migration-plan.py's answer); None: its database has them all.
    migration_plan: dict[str, object] | None = None
    # How the new release's migrate before the switch ends.
    migrate_answer: Answer = field(default_factory=ok)

    def __len__(self) -> int:
        return len(self.network.connections)

    def __getitem__(self, index: int) -> FakeConnection:
        return self.network.connections[index]

    def __iter__(self) -> Iterator[FakeConnection]:
        return iter(self.network.connections)

    def answer(self, command: str) -> Answer:
        folder = supervisor.directory(ACTIVATION_ID)
        own = next((text for start, text in self.answers.items() if command.startswith(start)), None)
        if own is not None:
            return ok(own)
        if command == host_system.FACTS_COMMAND:
            link = f"system-{self.generation}-link"
            return ok(f"{self.current}\n{self.current}\n{link}\n{CREATED}\n{self.lock_owner}\n")
        if command == host_system.GENERATIONS_COMMAND:
            return ok(
                f"/nix/var/nix/profiles/system-1-link {OLD}\n/nix/var/nix/profiles/system-2-link {NEW}\n"
            )
        if command.startswith(f"mkdir -p {folder} && printf") and "systemd-run " in command:
            # The supervisor sets the profile to a new or an existing generation.
            system, target = started_supervisor(command)[-6:-4]
            self.current = Path(system)
            self.generation = self.generation + 1 if target == "new" else int(target)
        elif command.startswith("deadline="):
            if self.waits_dropped:
                self.waits_dropped -= 1
                raise EOFError("the connection dropped")
            # State, generation, previous generation and boot status: a line each.
            if waits_for_the_switch(command):
                values = [self.state_after_start, self.generation, self.generation - 1, ""]
            else:
                values = [self.state_after_confirm, self.generation, self.generation - 1, self.boot_status]
            return ok("".join(f"{value}\n" for value in values))
        elif command.startswith(f"cat {folder}/state "):
            final = (
                self.state_after_confirm if self.state_after_start == "switched" else self.state_after_start
            )
            return ok(f"{final}\n---\n{self.reason}\n---\nerror: no space left on device\n")
        elif "djdeploy-migration-check" in command:
            return ok(f"example {'applied' if self.migration_plan is None else 'unknown'}\n")
        elif command.startswith(f"{NEW}/sw/bin/manage-example shell -c "):
            return ok(f"@@djdeploy-migration-plan {json.dumps(self.migration_plan)}\n")
        elif command.startswith("systemctl is-active"):
            return ok("active\n" * (command.count(".service") + command.count(".socket")))
        elif command.startswith(f"[ -s {folder}/failed-units ]"):
            return ok("".join(f"@@djdeploy-unit {unit}\n{log}\n" for unit, log in self.unit_journals.items()))
        elif command == f"cat {OLD}/{host_paths.SITES_MANIFEST}":
            return ok(json.dumps([MANIFEST_ENTRY]))
        elif " djdeploy-db backup " in command:
            return ok("20261123T000000Z-before-deploy.dump 2048\n")
        elif command.startswith("timeout ") and " migrate --noinput" in command:
            return self.migrate_answer
        elif command == records.ALL_COMMAND:
            return ok("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in self.deploy_log))
        elif command == f"test -d {folder}" and not self.activation_started:
            return Answer(exit_code=1)
        elif command.endswith(f"mv -f {folder}/rejected.new {folder}/rejected") and self.reject_refused:
            return Answer(exit_code=1, stderr=self.reject_refused)
        return ok()


@pytest.fixture
def host() -> Host:
    return Host(
        name="web1",
        address="192.0.2.1",
        ssh=SshSettings(),
        build=BuildSpec(file=Path("hosts.nix"), attribute="web1"),
        timeouts=Timeouts(activation=300, confirm=20, health=5),
        sites=("example",),
    )


REQUIRE_SYSTEM = toplevel.require_system


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> DeployHost:
    """web1 at 192.0.2.1, over the one SSH seam; the local side (build, nix copy, clock) answers at once."""
    web1 = DeployHost()
    web1.network = fake_ssh.install(monkeypatch, {"192.0.2.1": web1})
    monkeypatch.setattr(
        build,
        "build_systems",
        lambda hosts, on_progress: {h.name: build.BuiltSystem(h.name, NEW, 0.1) for h in hosts},
    )
    monkeypatch.setattr(nix, "copy_closure", lambda *args, **kwargs: None)
    monkeypatch.setattr(nix, "closure", lambda path: [nix.StorePath(str(NEW), 1000)])
    monkeypatch.setattr(supervisor, "new_id", lambda: ACTIVATION_ID)
    monkeypatch.setattr(host_run, "of_system", lambda system: (SITE,))
    # NEW names no real store path: it passes as the system it stands for.
    monkeypatch.setattr(toplevel, "require_system", lambda path, host: None)
    monkeypatch.setattr(health, "check", lambda remote, address, sites, timeout, **stop: health.Report(()))
    monkeypatch.setattr(records, "commit", lambda: "abc1234")
    monkeypatch.setattr(records, "who", lambda: {"user": "jane", "machine": "laptop"})
    monkeypatch.setattr(records, "now", lambda: "2026-11-23T00:00:00+00:00")
    return web1


def run_deploy(host: Host, **options: Any) -> Result:
    [result] = fleet.deploy([host], Options(**options), Console(file=io.StringIO()))
    return result


def test_a_store_path_that_is_no_system_is_refused_before_anything_runs(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "some-package"
    (package / "bin").mkdir(parents=True)
    monkeypatch.setattr(toplevel, "require_system", REQUIRE_SYSTEM)
    monkeypatch.setattr(
        build,
        "build_systems",
        lambda hosts, on_progress: {host.name: build.BuiltSystem(host.name, package, 0.1)},
    )
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith(
        f"The build of web1 gave {package}, which is not a NixOS system (it has no nixos-version), so "
        "nothing was copied and web1 was not switched."
    )
    assert [remote.commands for remote in fakes] == [[]]


def test_a_system_toplevel_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "nixos-version").write_text("25.11")
    REQUIRE_SYSTEM(tmp_path, "web1")


def test_deploy_runs_these_commands_in_this_order(host: Host, fakes: DeployHost) -> None:
    result = run_deploy(host)
    assert result.outcome == "deployed", result.message
    main, confirmation = fakes
    commands = main.commands
    activation_dir = "/run/djdeploy/activations/20261123T000000-abcdef"
    assert commands[0] == host_system.FACTS_COMMAND  # what the host runs
    assert commands[1].startswith(
        "mkdir -p /run/djdeploy && { mkdir /run/djdeploy/lock 2>/dev/null || exit 75; }"
    )
    assert '"id": "20261123T000000-abcdef"' in commands[1]
    assert commands[2] == "xargs -r nix-store --check-validity --print-invalid"
    # Whether the database has applied every migration of the release: yes, so no Django is started.
    assert commands[3] == migrations.check_command(NEW, [SITE])
    # The record's fixed fields, for the line the supervisor writes when it ends.
    fixed = {
        "action": "deploy",
        "backups": [],
        "commit": "abc1234",
        "id": "20261123T000000-abcdef",
        "machine": "laptop",
        "started": "2026-11-23T00:00:00+00:00",
        "system": str(NEW),
        "user": "jane",
    }
    assert commands[4].startswith(
        f"mkdir -p {activation_dir} && printf '%s\\n' {shlex.quote(json.dumps(fixed))} > "
        f"{activation_dir}/record.json && systemd-run "
    )
    started = started_supervisor(commands[4])
    assert started[:8] == [
        "systemd-run",
        "--unit=djdeploy-activate-20261123T000000-abcdef",
        "--description=djdeploy activation",
        "--collect",
        "--no-ask-password",
        "--quiet",
        "--service-type=exec",
        f"--setenv=PATH={supervisor.SUPERVISOR_PATH}",
    ]
    assert started[8:10] == ["/bin/sh", "-c"]
    # its directory, the profile, the new system, a new generation (not an existing one), seconds to wait
    # for the check and the confirmation, the deploy log and lock it ends, the host's switch lock
    assert started[11:] == [
        "djdeploy-activate",
        activation_dir,
        host_paths.SYSTEM_PROFILE,
        str(NEW),
        "new",
        "25",
        "/var/lib/djdeploy/deploys.jsonl",
        "/run/djdeploy/lock",
        "/run/djdeploy/switch.lock",
    ]
    assert "deadline=" in commands[5]
    assert waits_for_the_switch(commands[5])
    # Confirmation goes over a second, new connection.
    assert confirmation.commands == [confirms(activation_dir)]
    assert "deadline=" in commands[6]
    assert not waits_for_the_switch(commands[6])
    # The supervisor wrote the deploy log's line and released the lock when it ended: the deployer neither.
    assert len(commands) == 7
    assert result.generation == 2


def test_connections_open_while_the_systems_build(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build_after_the_connection_opened(
        hosts: list[Host], on_progress: object
    ) -> dict[str, build.BuiltSystem]:
        deadline = time.monotonic() + 5
        while not fakes and time.monotonic() < deadline:
            time.sleep(0.01)
        if not fakes:
            raise build.BuildError("no connection was opened during the build")
        return {h.name: build.BuiltSystem(h.name, NEW, 0.1) for h in hosts}

    monkeypatch.setattr(build, "build_systems", build_after_the_connection_opened)
    result = run_deploy(host)
    assert result.outcome == "deployed", result.message
    assert len(fakes) == 2  # the deploy's connection, opened during the build, and the confirmation's


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The health checks a deploy ran (address, sites, timeout); the answer is healthy."""
    calls: list[tuple[object, ...]] = []

    def check(remote: object, address: str, checked: object, timeout: float, **stop: object) -> health.Report:
        calls.append((address, checked, timeout))
        return health.Report(())

    monkeypatch.setattr(health, "check", check)
    return calls


def test_unchanged_host_is_checked_once_and_left_alone(
    host: Host, fakes: DeployHost, health_checks: list[tuple[object, ...]]
) -> None:
    fakes.current = NEW
    console = io.StringIO()
    [result] = fleet.deploy([host], Options(), Console(file=console, width=200))
    assert result.outcome == "unchanged"
    assert result.ok
    assert fakes[0].commands == [host_system.FACTS_COMMAND]
    # Its sites and units, checked once without waiting: an unchanged deploy stays fast.
    assert health_checks == [("192.0.2.1", (SITE,), 0)]
    assert f"Nothing changed: web1 already runs {NEW.name}, and it is healthy." in console.getvalue()


def test_unchanged_but_unhealthy_host_is_not_reported_as_fine(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = (
        "gunicorn-example.service is failed",
        "https://example.test/healthz answered 502, expected 200",
    )
    monkeypatch.setattr(health, "check", lambda *args, **stop: health.Report(problems))
    fakes.current = NEW
    result = run_deploy(host)
    assert (result.outcome, result.ok) == ("unhealthy", False)
    assert result.message == (
        f"web1 already runs {NEW.name} (generation 1), so there is nothing to deploy, but it is unhealthy: "
        "gunicorn-example.service is failed; https://example.test/healthz answered 502, expected 200. "
        "Deploying the same build again would not change that. See why with "
        "`djdeploy logs web1 --site example`, then deploy a fixed build, or return to the generation before "
        "with `djdeploy rollback --host web1`."
    )
    assert fakes[0].commands == [host_system.FACTS_COMMAND]  # nothing locked, copied or switched
    assert "Nothing changed" not in result.message


def test_a_locked_host_is_refused_even_when_nothing_changed(host: Host, fakes: DeployHost) -> None:
    fakes.current = NEW
    fakes.lock_owner = '{"user": "ana", "machine": "desk", "since": "2026-11-23T10:00:00+00:00"}'
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith("web1 is locked by another deploy: ana@desk since 2026-11-23T10:00:00")
    assert "djdeploy unlock --host web1" in result.message
    assert len(fakes[0].commands) == 1  # refused at the comparison, before anything else


def test_a_failed_boot_default_is_reported_though_the_new_generation_runs(
    host: Host, fakes: DeployHost
) -> None:
    fakes.boot_status = 1
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert "generation 2 runs and passed its checks, but making it the boot default failed" in result.message
    assert "switch-to-configuration boot exited with 1" in result.message
    assert not any(writes_the_log_or_unlocks(command) for command in fakes[0].commands)


def test_a_profile_that_cannot_be_set_switches_nothing(host: Host, fakes: DeployHost) -> None:
    fakes.state_after_start = "not-switched"
    fakes.reason = "setting the system profile failed (nix-env exited with 1)"
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith(
        "web1: nothing was switched: setting the system profile failed (nix-env exited with 1). "
        "The host still runs generation 1."
    )
    assert "no space left on device" in result.message
    commands = fakes[0].commands
    assert not any(command.startswith("cat > /run/djdeploy/activations/") for command in commands)
    assert len(fakes) == 1  # no confirmation connection: nothing to confirm
    assert not any(writes_the_log_or_unlocks(command) for command in commands)


def test_a_host_lost_during_the_activation_keeps_its_lock(host: Host, fakes: DeployHost) -> None:
    fakes.waits_dropped = 2  # the wait, and the wait again over a new connection
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith("web1: lost the host while its activation ran (Lost the SSH connection")
    assert result.message.endswith(
        "then records the outcome and releases its lock: `djdeploy status --host web1` shows it. If it "
        "restarts before, it boots its boot default (the generation before) and its deploy log gets no line "
        "for this deploy."
    )
    commands = [command for remote in fakes for command in remote.commands]
    assert not any(writes_the_log_or_unlocks(command) for command in commands)


def test_a_wait_cut_off_asks_again_over_a_new_connection_and_keeps_it(host: Host, fakes: DeployHost) -> None:
    fakes.waits_dropped = 1
    result = run_deploy(host)
    assert result.outcome == "deployed", result.message
    # The first wait (for the switch) comes before the confirmation's connection opens.
    main, reconnected, confirmation = fakes
    assert main.commands[-1].startswith("deadline=")
    assert reconnected.commands[0] == main.commands[-1]  # the same wait, asked again
    assert confirmation.commands == [confirms(supervisor.directory(ACTIVATION_ID))]
    assert reconnected.commands[-1].startswith("deadline=")  # the wait for the final state
    assert not any(writes_the_log_or_unlocks(c) for connection in fakes for c in connection.commands)


def test_a_command_that_failed_on_the_host_is_not_sent_again(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.reject_refused = "read-only file system"
    monkeypatch.setattr(health, "check", lambda *args, **stop: health.Report(("caddy.service is failed",)))
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert "read-only file system" in result.message
    sent = [command for connection in fakes for command in connection.commands]
    assert len([command for command in sent if command.endswith("/rejected")]) == 1
    assert len(fakes) == 2  # the deploy's connection and the confirmation's: no reconnection


GUNICORN_JOURNAL = """Started gunicorn-example.service - gunicorn of the Django site example.
No module named 'example_site.config.missing'
gunicorn-example.service: Failed with result 'exit-code'."""


def test_failed_health_check_rejects_and_reports_the_rollback(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        health, "check", lambda *args, **stop: health.Report(("https://example.test/healthz answered 502",))
    )
    fakes.state_after_confirm = "rolled-back"
    fakes.unit_journals = {"gunicorn-example.service": GUNICORN_JOURNAL}
    result = run_deploy(host)
    assert result.outcome == "rolled back"
    assert result.message == (
        "web1: rolled back to generation 1 because the health check failed: "
        "https://example.test/healthz answered 502.\n"
        "gunicorn-example.service failed. The end of its journal:\n"
        "  Started gunicorn-example.service - gunicorn of the Django site example.\n"
        "  No module named 'example_site.config.missing'\n"
        "  gunicorn-example.service: Failed with result 'exit-code'.\n"
        "More with `djdeploy logs web1 --site example`."
    )
    commands = fakes[0].commands
    activation_dir = "/run/djdeploy/activations/20261123T000000-abcdef"
    # The units that are not active are recorded with the run that failed, before the rollback restarts them.
    assert commands[6] == (
        "for unit in gunicorn-example.service caddy.service; do "
        '[ "$(systemctl is-active "$unit")" = active ] && continue; '
        '[ "$(systemctl show --property=Result --value "$unit")" = service-start-limit-hit ] && continue; '
        'printf "%s %s\\n" "$unit" "$(systemctl show --property=InvocationID --value "$unit")"; '
        f"done > {activation_dir}/failed-units; cat > {activation_dir}/rejected.new && "
        f"mv -f {activation_dir}/rejected.new {activation_dir}/rejected"
    )
    assert fakes[1].commands == []  # the confirmation's connection confirms nothing
    assert not any(writes_the_log_or_unlocks(command) for command in commands)  # the supervisor does


def test_a_unit_that_fails_the_switch_shows_its_own_journal_once(host: Host, fakes: DeployHost) -> None:
    fakes.state_after_start = "rolled-back"
    fakes.reason = "activation failed: switch-to-configuration exited with 4"
    fakes.unit_journals = {"gunicorn-example.service": GUNICORN_JOURNAL}
    result = run_deploy(host)
    assert result.outcome == "rolled back"
    assert result.message == (
        "web1: rolled back to generation 1 because activation failed: "
        "switch-to-configuration exited with 4.\n"
        "gunicorn-example.service failed. The end of its journal:\n"
        "  Started gunicorn-example.service - gunicorn of the Django site example.\n"
        "  No module named 'example_site.config.missing'\n"
        "  gunicorn-example.service: Failed with result 'exit-code'.\n"
        "More with `djdeploy logs web1 --site example`."
    )  # and not the switch's own log, which has every unit's complaints
    activation_dir = "/run/djdeploy/activations/20261123T000000-abcdef"
    commands = fakes[0].commands
    assert commands[6] == f"cat {activation_dir}/state 2>/dev/null; echo '---'; " + (
        f"cat {activation_dir}/reason 2>/dev/null; echo '---'; tail -n 25 {activation_dir}/switch.log "
        f"2>/dev/null; tail -n 25 {activation_dir}/rollback.log 2>/dev/null; true"
    )
    journal = 'journalctl --no-pager --output=cat --since="@$since"'
    assert commands[7] == (
        f"[ -s {activation_dir}/failed-units ] || exit 0; since=$(cat {activation_dir}/started); "
        'while read -r unit invocation; do echo "@@djdeploy-unit $unit"; '
        f'if [ -n "$invocation" ]; then {journal} "_SYSTEMD_INVOCATION_ID=$invocation" + '
        f'"INVOCATION_ID=$invocation"; else {journal} --unit="$unit"; fi | tail -n 20; '
        f"done < {activation_dir}/failed-units"
    )
    assert len(commands) == 8


def test_a_failed_switch_that_names_no_unit_shows_its_log(host: Host, fakes: DeployHost) -> None:
    fakes.state_after_start = "failed"
    fakes.reason = "activation failed: switch-to-configuration exited with 1"
    result = run_deploy(host)
    assert result.message == (
        "web1: the new generation 2 failed (activation failed: switch-to-configuration exited with 1) and "
        "there is no earlier generation to roll back to.\nerror: no space left on device"
    )


def failed_units(switch_log: str, tmp_path: Path) -> list[str]:
    """What the supervisor's failed_units function finds in a switch log."""
    (tmp_path / "switch.log").write_text(switch_log)
    function = re.search(r"^failed_units\(\) \{\n.*?^\}$", supervisor.SUPERVISOR, re.M | re.S)
    assert function is not None
    script = f"dir={shlex.quote(str(tmp_path))}\n{function.group(0)}\nfailed_units\n"
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()


def test_the_supervisor_finds_the_units_a_switch_named_as_failed(tmp_path: Path) -> None:
    log = (
        "restarting the following units: caddy.service, gunicorn-example.service\n"
        "Job for caddy.service failed because the control process exited with error code.\n"
        'See "systemctl status caddy.service" and "journalctl -xeu caddy.service" for details.\n'
        "warning: the following units failed: django-migrate-example.service, gunicorn-example.service\n"
        "\n"
        "x gunicorn-example.service - gunicorn of the Django site example\n"
    )
    assert failed_units(log, tmp_path) == [
        "caddy.service",
        "django-migrate-example.service",
        "gunicorn-example.service",
    ]
    assert failed_units("error: activation failed: useradd failed\n", tmp_path) == []
    # Read before the rollback restarts them, so their journal is of the run that failed.
    assert supervisor.SUPERVISOR.index("record_failed_units\n    roll_back") > 0


def test_rollback_records_the_commit_of_the_generation_it_returns_to(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.current, fakes.deploy_log = (
        NEW,
        [
            {
                "action": "deploy",
                "generation": 1,
                "system": str(OLD),
                "commit": "1111111",
                "outcome": "success",
            },
            {
                "action": "rollback",
                "generation": 1,
                "system": str(OLD),
                "commit": "9999999",
                "outcome": "success",
            },
            {
                "action": "deploy",
                "generation": 2,
                "system": str(NEW),
                "commit": "2222222",
                "outcome": "success",
            },
        ],
    )
    fakes.generation = 2
    result = rollback(host, None)
    assert result.outcome == "deployed", result.message
    commands = fakes[0].commands
    assert commands[:5] == [
        host_system.FACTS_COMMAND,
        'for link in /nix/var/nix/profiles/system-*-link; do [ -e "$link" ] && '
        'printf "%s %s\\n" "$link" "$(readlink -f "$link")"; done; true',
        "test ! -e /var/lib/djdeploy/deploys.jsonl || cat /var/lib/djdeploy/deploys.jsonl",
        # The facts of the deploy that made generation 2 from 1, to put its schema back first.
        schema.of_deploy_command(2, 1),
        "mkdir -p /run/djdeploy && { mkdir /run/djdeploy/lock 2>/dev/null || exit 75; } && printf '%s\\n' "
        + shlex.quote(
            json.dumps(
                {
                    "user": "jane",
                    "machine": "laptop",
                    "since": "2026-11-23T00:00:00+00:00",
                    "command": f"rollback {OLD.name}",
                    "id": "20261123T000000-abcdef",
                }
            )
        )
        + " > /run/djdeploy/lock/owner.json",
    ]
    started = started_supervisor(commands[6])
    activation_dir = "/run/djdeploy/activations/20261123T000000-abcdef"
    assert started[11:16] == [
        "djdeploy-activate",
        activation_dir,
        host_paths.SYSTEM_PROFILE,
        str(OLD),
        "1",
    ]
    fixed = json.loads(shlex.split(commands[6])[6])  # the record the supervisor completes
    # The commit generation 1 was deployed from, not this machine's HEAD (abc1234) nor a rollback's.
    assert (fixed["action"], fixed["commit"]) == ("rollback", "1111111")


def rollback(host: Host, to: int | None, console: io.StringIO | None = None) -> Result:
    stopper: interrupt.Stopper[Result] = interrupt.Stopper(print)
    shown = Console(file=console or io.StringIO(), width=300)
    return host_run.rollback(host, to, Options(), shown, stopper)


THREE_GENERATIONS = (
    "/nix/var/nix/profiles/system-1-link /nix/store/1-system\n"
    "/nix/var/nix/profiles/system-2-link /nix/store/2-system\n"
    "/nix/var/nix/profiles/system-3-link /nix/store/3-system\n"
)


def test_rollback_picks_the_newest_generation_a_deploy_confirmed_healthy(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = [
        {
            "action": "deploy",
            "generation": 1,
            "system": "/nix/store/1-system",
            "outcome": "success",
            "user": "ana",
            "machine": "desk",
            "commit": "1111111",
            "finished": "2026-11-20T10:00:00+00:00",
        },
        {
            "action": "deploy",
            "generation": 1,
            "system": "/nix/store/2-system",
            "outcome": "rolled back",
            "reason": "the health check failed: https://example.test/healthz answered 500",
        },
        {"action": "deploy", "generation": 3, "system": "/nix/store/3-system", "outcome": "success"},
    ]
    fakes.generation = 3
    fakes.answers = {
        host_system.GENERATIONS_COMMAND: THREE_GENERATIONS,
        records.ALL_COMMAND: "".join(json.dumps(line) + "\n" for line in log),
    }
    monkeypatch.setattr(host_run, "of_remote_system", lambda remote, system: (SITE,))
    shown = io.StringIO()
    result = rollback(host, None, shown)
    assert result.outcome == "deployed", result.message
    # Generation 2 failed its checks: it is passed over, and said so.
    assert (
        "Rolling back web1 to generation 1: the newest earlier generation whose deploy was confirmed healthy "
        "(2026-11-20T10:00:00+00:00, ana@desk, commit 1111111). Passed over: generation 2 (rolled back)."
    ) in " ".join(shown.getvalue().split())
    started = started_supervisor(next(c for c in fakes[0].commands if "systemd-run" in c))
    assert started[14:16] == ["/nix/store/1-system", "1"]


def test_rollback_without_a_healthy_generation_says_to_name_one(host: Host, fakes: DeployHost) -> None:
    fakes.generation = 3
    fakes.answers = {host_system.GENERATIONS_COMMAND: THREE_GENERATIONS}
    with pytest.raises(DjdeployError) as error:
        rollback(host, None)
    assert error.value.message == (
        "web1 has no generation before 3 that a deploy confirmed healthy: generation 2 (no deploy record); "
        "generation 1 (no deploy record). Name the one to return to with "
        "`djdeploy rollback --host web1 --to N` (`djdeploy status --host web1` lists them)."
    )
    assert not any("mkdir /run/djdeploy/lock" in command for command in fakes[0].commands)


def test_sudo_wraps_privileged_commands_only(host: Host, fakes: DeployHost) -> None:
    fakes.sudo_asks_password = True
    sudo_host = dataclasses.replace(host, ssh=SshSettings(user="deploy", sudo=True))
    assert run_deploy(sudo_host, sudo_password="secret").outcome == "deployed"
    sent = fakes[0].sent
    assert (sent[0].command, sent[0].privileged) == (host_system.FACTS_COMMAND, False)
    assert sent[1].command.startswith("mkdir -p /run/djdeploy && ")
    assert sent[2].command.startswith("xargs")  # reading the store needs no root
    assert "djdeploy-migration-check" in sent[3].command
    assert sent[4].command.startswith(f"mkdir -p {supervisor.directory(ACTIVATION_ID)} && printf ")
    assert [one.privileged for one in sent[1:5]] == [True, False, True, True]
    # The password goes on sudo's standard input, never into a command line.
    assert all((one.input_text or "").startswith("secret\n") for one in sent if one.privileged)
    assert all("secret" not in one.command for connection in fakes for one in connection.sent)


def test_the_sudo_password_is_in_no_repr_output_or_message(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "s3cret-sudo-pw"
    options = Options(sudo_password=password)
    assert password not in repr(options)
    sudo_host = dataclasses.replace(host, ssh=SshSettings(user="deploy", sudo=True))
    fakes.sudo_asks_password = True
    output = io.StringIO()
    [deployed] = fleet.deploy([sudo_host], options, Console(file=output, width=200))
    assert deployed.outcome == "deployed", deployed.message
    monkeypatch.setattr(
        health, "check", lambda *args, **stop: health.Report(("gunicorn-example.service is failed",))
    )
    fakes.current = NEW
    [unhealthy] = fleet.deploy([sudo_host], options, Console(file=output, width=200))
    assert unhealthy.outcome == "unhealthy"
    # It was used, and shown nowhere.
    assert any((sent.input_text or "").startswith(password) for sent in fakes[0].sent)
    shown = output.getvalue() + repr(deployed) + repr(unhealthy) + repr(fakes[0].commands)
    assert password not in shown


def test_supervisor_script_rolls_back_without_confirmation() -> None:
    script = supervisor.SUPERVISOR
    assert script.startswith("#!/bin/sh\n")
    assert "dir=$1 profile=$2 new=$3 target=$4 confirm_seconds=$5" in script
    assert 'nix-env -p "$profile" --switch-generation "$previous"' in script
    assert 'nix-env -p "$profile" --set "$new"' in script
    assert "no confirmation from the deployer" in script
    # systemd-run's unit would replace ${...} with an environment variable (mostly empty).
    assert "${" not in script


def test_facts_are_read_in_one_command(fakes: DeployHost) -> None:
    fakes.generation = 7
    with Remote(SshTarget("web1", "192.0.2.1")) as remote:
        facts = host_system.facts(remote)
    created = datetime.fromtimestamp(CREATED, UTC)
    assert facts == host_system.Facts(OLD, OLD, host_system.Generation(7, OLD, created))
    assert fakes[0].commands == [host_system.FACTS_COMMAND]


def test_generation_numbers_are_read_from_profile_links() -> None:
    assert host_system.generation_number("/nix/var/nix/profiles/system-12-link") == 12
    assert host_system.generation_number("system-x-link") is None
    assert host_system.generation_number("") is None


def test_sites_are_read_from_the_built_system(tmp_path: Path) -> None:
    manifest = tmp_path / host_paths.SITES_MANIFEST
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps([MANIFEST_ENTRY]))
    assert sites.of_system(tmp_path) == (SITE,)
    assert sites.of_system(tmp_path / "elsewhere") == ()


def test_batches_stop_after_the_first_batch_with_a_failure(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = dataclasses.replace(host, name="web2", address="192.0.2.2")
    later = [dataclasses.replace(host, name=name) for name in ("web3", "web4")]
    results = fleet.deploy([host, unreachable, *later], Options(batch=2), Console(file=io.StringIO()))
    assert [(result.host, result.outcome) for result in results] == [
        ("web1", "deployed"),
        ("web2", "failed"),
        ("web3", "skipped"),
        ("web4", "skipped"),
    ]
    assert results[1].message.startswith("Cannot reach web2 (root@192.0.2.2:22): no route to 192.0.2.2.")


def test_a_failure_is_printed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    output = io.StringIO()
    monkeypatch.setattr(deploy_tasks, "console", Console(file=output, width=200))
    failure = Result("web1", Outcome.ROLLED_BACK, "web1: rolled back to generation 1.\nNo module named 'x'")
    with pytest.raises(DjdeployError) as one_host:
        deploy_tasks._summarize([failure])
    assert one_host.value.message == failure.message
    assert output.getvalue() == ""  # no table for one host: the error's box says it all
    with pytest.raises(DjdeployError) as two_hosts:
        deploy_tasks._summarize([failure, Result("web2", Outcome.DEPLOYED, "generation 4")])
    assert two_hosts.value.message == failure.message
    table = output.getvalue()
    assert "web1: rolled back to generation 1." in table
    assert "No module named" not in table  # its first line only
    assert "generation 4" in table


def test_a_failed_health_check_is_printed_as_failed(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        health, "check", lambda *args, **stop: health.Report(("https://example.test/healthz answered 500",))
    )
    fakes.state_after_confirm = "rolled-back"
    output = io.StringIO()
    [result] = fleet.deploy([host], Options(), Console(file=output, width=200))
    assert result.outcome == "rolled back"
    lines = output.getvalue().splitlines()
    assert any(line.startswith("✗ health check ") for line in lines), lines
    assert not any(line.startswith("✓ health check") for line in lines)
    assert any(line.startswith("✓ set the profile and switch") for line in lines)


ACTIVATION = "/run/djdeploy/activations/20261123T000000-abcdef"
HELD = json.dumps(
    {"user": "ana", "machine": "desk", "since": "2026-11-23T10:00:00+00:00", "id": ACTIVATION_ID}
)


RUNNING = f"systemctl is-active --quiet djdeploy-activate-{ACTIVATION_ID}.service"


@pytest.fixture
def locked(fakes: DeployHost) -> Iterator[Remote]:
    """web1 locked by ana's deploy, whose activation still runs (switched, until 08:00:00 UTC)."""
    fakes.answers = {lock.OWNER_COMMAND: f"{HELD}\n", RUNNING: "running\nswitched\n1795420800\n"}
    with Remote(SshTarget("web1", "192.0.2.1", SshSettings())) as remote:
        yield remote


def test_unlock_refuses_while_the_activation_of_the_lock_runs(
    host: Host, fakes: DeployHost, locked: Remote
) -> None:
    with pytest.raises(DjdeployError) as refused:
        unlock.unlock(locked, host, force=False, console=Console(file=io.StringIO()))
    assert " ".join(refused.value.message.split()) == (
        "web1 is locked by ana@desk since 2026-11-23T10:00:00+00:00 (?), and its activation "
        "20261123T000000-abcdef is still running (state 'switched'): without a confirmation it rolls back by "
        "itself at 08:00:00 UTC; then it records the outcome and releases the lock by itself. Wait for that "
        "(`djdeploy status` shows it), or make it roll back now and break the lock with "
        "`djdeploy unlock --host web1 --force`."
    )
    assert fakes[0].commands == [
        lock.OWNER_COMMAND,
        f"{RUNNING} || exit 0; echo running; "
        f'printf "%s\\n" "$(cat {ACTIVATION}/state 2>/dev/null)" "$(cat {ACTIVATION}/deadline 2>/dev/null)"',
    ]


def test_unlock_force_rejects_the_activation_and_waits_for_its_rollback(
    host: Host, fakes: DeployHost, locked: Remote
) -> None:
    fakes.state_after_confirm, fakes.generation = "rolled-back", 2
    output = io.StringIO()
    holder = unlock.unlock(locked, host, force=True, console=Console(file=output, width=300))
    assert holder is not None
    assert holder.user == "ana"
    commands = fakes[0].commands
    assert (
        commands[2]
        == f"cat > {ACTIVATION}/rejected.new && mv -f {ACTIVATION}/rejected.new {ACTIVATION}/rejected"
    )
    assert commands[3].startswith("deadline=$(( $(date +%s) + 630 ))")  # bounded: two switches' time
    assert not waits_for_the_switch(commands[3])
    # The supervisor released its lock; a lock retaken meanwhile by another deploy stays.
    assert commands[4] == (
        f"{{ grep -qF '\"{ACTIVATION_ID}\"' /run/djdeploy/lock/owner.json 2>/dev/null "
        "&& rm -rf /run/djdeploy/lock; true; }"
    )
    assert len(commands) == 5
    said = " ".join(output.getvalue().split())
    assert f"Rejecting activation {ACTIVATION_ID} on web1: waiting up to 630 s for it to roll back." in said
    assert f"Activation {ACTIVATION_ID} ended: rolled back to generation 1." in said


def test_unlock_of_a_lock_without_a_running_activation_breaks_it(
    host: Host, fakes: DeployHost, locked: Remote
) -> None:
    del fakes.answers[RUNNING]
    holder = unlock.unlock(locked, host, force=False, console=Console(file=io.StringIO()))
    assert holder is not None
    # Its activation was started (and ended without releasing the lock): there is a line for it already.
    assert fakes[0].commands[2] == f"test -d {ACTIVATION}"
    assert len(fakes[0].commands) == 4
    assert "rm -rf /run/djdeploy/lock" in fakes[0].commands[3]


def test_unlock_of_a_deployer_that_died_before_its_activation_records_it_as_not_switched(
    host: Host, fakes: DeployHost, locked: Remote
) -> None:
    del fakes.answers[RUNNING]
    fakes.activation_started = False
    fakes.answers[lock.OWNER_COMMAND] = (
        json.dumps({**json.loads(HELD), "command": f"deploy {NEW.name}"}) + "\n"
    )
    holder = unlock.unlock(locked, host, force=False, console=Console(file=io.StringIO()))
    assert holder is not None
    *_, recorded = fakes[0].commands
    record = records.DeployRecord(
        id=ACTIVATION_ID,
        user="ana",
        machine="desk",
        commit="-",
        started="2026-11-23T10:00:00+00:00",
        system=str(NEW),
        action=records.Action.DEPLOY,
        finished=re.search(r'"finished": "([^"]+)"', recorded).group(1),  # type: ignore[union-attr]
        outcome=records.RecordOutcome.NOT_SWITCHED,
        reason=unlock.NEVER_STARTED_REASON,
    )
    assert recorded == f"{records.append_command(record)} && {lock.release_command(ACTIVATION_ID)}"


def interrupt_main_thread_when(condition: Callable[[], bool]) -> threading.Thread:
    """A Ctrl-C to this process (SIGINT to the main thread) once condition holds; bounded."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_during_the_health_check_rejects_at_once_and_reports_the_rollback(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    checking = threading.Event()

    def slow_check(*args: object, stop: threading.Event, **options: object) -> health.Report:
        checking.set()
        stop.wait(30)  # the real check ends as soon as the stop is set
        return health.Report(("gunicorn-example.service is activating",))

    monkeypatch.setattr(health, "check", slow_check)
    fakes.state_after_confirm, fakes.reason = "rolled-back", host_run.STOPPED_REASON
    output = io.StringIO()
    interrupt_main_thread_when(checking.is_set)
    with pytest.raises(interrupt.Stopped) as stopped:
        fleet.deploy([host], Options(), Console(file=output, width=300))
    said = output.getvalue()
    assert "stopping: rejecting generation 2 on web1, it rolls back now" in said
    assert "✗ health check" in said
    # Rejected at once over a new connection; the deploy's own run rejects again, confirms nothing.
    rejections = [
        c
        for remote in fakes
        for c in remote.commands
        if c.endswith(f"mv -f {ACTIVATION}/rejected.new {ACTIVATION}/rejected")
    ]
    assert len(rejections) == 2
    assert not any(c.endswith("/confirmed") for remote in fakes for c in remote.commands)
    assert stopped.value.message.startswith(
        "Stopped by Ctrl-C.\n\nweb1: rolled back to generation 1 because the deployer was stopped (Ctrl-C)."
    )


def test_ctrl_c_during_the_copy_says_nothing_was_switched_and_records_it(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    copying = threading.Event()

    def slow_copy(*args: object, **options: object) -> None:
        copying.set()
        deadline = time.monotonic() + 10
        while fakes[0].commands[-1:] != ["stopped"] and time.monotonic() < deadline:
            time.sleep(0.01)
        raise DjdeployError("`nix copy` failed with exit code 130.")

    monkeypatch.setattr(nix, "copy_closure", slow_copy)
    monkeypatch.setattr(process, "stop_children", lambda: fakes[0].commands.append("stopped"))
    output = io.StringIO()
    interrupt_main_thread_when(copying.is_set)
    with pytest.raises(interrupt.Stopped) as stopped:
        fleet.deploy([host], Options(), Console(file=output, width=300))
    assert "stopping: nothing was switched on web1; its deploy lock is released." in output.getvalue()
    assert stopped.value.message == (
        "Stopped by Ctrl-C.\n\nweb1: stopped by Ctrl-C during the copy: nothing was switched, the host runs "
        "what it ran."
    )
    commands = fakes[0].commands
    assert not any("systemd-run" in command for command in commands)
    recorded = json.loads(shlex.split(commands[-1])[6])
    assert (recorded["outcome"], recorded["reason"]) == (
        "not switched",
        stopped.value.message.split("\n")[-1],
    )
    assert commands[-1].endswith("&& rm -rf /run/djdeploy/lock; true; }")


def test_a_second_ctrl_c_leaves_at_once_saying_when_the_host_decides(
    host: Host, fakes: DeployHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    checking, rejected = threading.Event(), threading.Event()

    def check_until_the_end(*args: object, stop: threading.Event, **options: object) -> health.Report:
        checking.set()
        time.sleep(3)  # a deploy thread that does not end soon: the second Ctrl-C does not wait for it
        return health.Report(())

    reject = supervisor.reject

    def note_rejection(*args: Any, **options: Any) -> None:
        reject(*args, **options)
        rejected.set()

    monkeypatch.setattr(health, "check", check_until_the_end)
    monkeypatch.setattr(supervisor, "reject", note_rejection)
    interrupt_main_thread_when(checking.is_set)

    # The second a moment after the rejection, while the deployer waits for the host's outcome.
    def a_moment_after_the_rejection() -> bool:
        rejected.wait(10)
        time.sleep(0.3)
        return True

    interrupt_main_thread_when(a_moment_after_the_rejection)
    started = time.monotonic()
    with pytest.raises(interrupt.LeftEarly) as left:
        fleet.deploy([host], Options(), Console(file=io.StringIO(), width=300))
    assert time.monotonic() - started < 2.5
    assert left.value.message == (
        "Leaving now. web1 was told to roll back and does so by itself as soon as its switch ends, then "
        "records the outcome and releases its lock: `djdeploy status --host web1` shows it."
    )


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("activation_timeout", "-5", "--activation-timeout must be a positive number of seconds, not '-5'."),
        ("activation_timeout", "0", "--activation-timeout must be a positive number of seconds, not '0'."),
        ("confirm_timeout", "nan", "--confirm-timeout must be a positive number of seconds, not 'nan'."),
        ("confirm_timeout", "inf", "--confirm-timeout must be a positive number of seconds, not 'inf'."),
        (
            "migrate_timeout",
            "0",
            "--migrate-timeout must be a positive number of seconds, not '0'. Leave it out for the "
            "inventory's timeouts.migrate.",
        ),
        (
            "parallel",
            "0",
            "--parallel must be a whole number from 1, not '0'. Leave it out for 4 hosts at once.",
        ),
        (
            "batch",
            "-1",
            "--batch must be a whole number from 1, not '-1'. Leave it out for all hosts in one batch.",
        ),
        ("batch", "1.5", "--batch must be a whole number from 1, not '1.5'."),
    ],
)
def test_command_line_values_are_checked_as_the_inventory_s(
    option: str, value: str, expected: str, capsys: pytest.CaptureFixture[str], fakes: DeployHost
) -> None:
    with pytest.raises(Exit):
        deploy_tasks.deploy(Context(), inventory="no-such-inventory.yaml", **{option: value})
    assert expected in " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert len(fakes) == 0  # refused before anything was read or built
