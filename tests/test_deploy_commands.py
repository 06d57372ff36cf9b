"""The exact commands each deploy step runs, with the SSH and process boundary faked."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from djdeploy import activation, build, deploy, health, host_paths, host_system, nix, sites
from djdeploy.errors import DjdeployError
from djdeploy.inventory import BuildSpec, Host, SshSettings, Timeouts
from djdeploy.ssh import RemoteResult, SshTarget

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
OLD = Path("/nix/store/" + "a" * 32 + "-lab-system-old")
NEW = Path("/nix/store/" + "b" * 32 + "-lab-system-new")


def waits_for_the_switch(command: str) -> bool:
    """Whether a wait command stops at the state 'switched' (not only at final ones like 'not-switched')."""
    return re.search(r"for w in [^;]*(?<![-\w])switched\b", command) is not None


@dataclass
class FakeRemote:
    """Answers the commands a deploy sends, and records them in order."""

    target: SshTarget
    sudo_password: str | None = None
    state_after_confirm: str = "confirmed"
    commands: list[str] = field(default_factory=list)
    current: Path = OLD
    generation: int = 1
    lock_owner: str = ""
    boot_status: int = 0
    # What the supervisor reaches instead of "switched" (a final state), and why.
    state_after_start: str = "switched"
    reason: str = ""

    def open(self) -> FakeRemote:
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, argv: list[str], **kwargs: Any) -> RemoteResult:
        return self.run_shell(shlex.join(argv), **kwargs)

    def run_shell(self, command: str, **kwargs: Any) -> RemoteResult:
        if kwargs.get("privileged") and self.target.sudo:
            command = f"sudo {command}"
        self.commands.append(command)
        output = ""
        if command.startswith("printf"):
            link = f"/nix/var/nix/profiles/system-{self.generation}-link"
            output = f"{self.current}\n{self.current}\n{link}\n{self.lock_owner}\n"
        elif "systemd-run" in command:  # the supervisor sets the profile to a new generation
            self.current, self.generation = NEW, self.generation + 1
        elif "deadline=" in command:
            # State, generation, previous generation and boot status: a line each.
            if waits_for_the_switch(command):
                values = [self.state_after_start, self.generation, self.generation - 1, ""]
            else:
                values = [self.state_after_confirm, self.generation, self.generation - 1, self.boot_status]
            output = "".join(f"{value}\n" for value in values)
        elif command.startswith("cat /run/djdeploy/activations"):
            final = (
                self.state_after_confirm if self.state_after_start == "switched" else self.state_after_start
            )
            output = f"{final}\n---\n{self.reason}\n---\nerror: no space left on device\n"
        elif command.startswith("systemctl is-active"):
            output = "active\n" * command.count(".service") + "active\n" * command.count(".socket")
        return RemoteResult(command, 0, output, "")


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


class FakeHosts(list[FakeRemote]):
    """Every connection a deploy opened; later ones see what the first changed."""

    current: Path = OLD
    state_after_confirm: str = "confirmed"
    lock_owner: str = ""
    boot_status: int = 0
    state_after_start: str = "switched"
    reason: str = ""

    def connect(self, target: SshTarget, sudo_password: str | None = None) -> FakeRemote:
        remote = FakeRemote(
            target,
            sudo_password,
            self.state_after_confirm,
            current=self.current,
            lock_owner=self.lock_owner,
            boot_status=self.boot_status,
            state_after_start=self.state_after_start,
            reason=self.reason,
        )
        if self:
            remote.current, remote.generation = self[0].current, self[0].generation
        self.append(remote)
        return remote


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    remotes = FakeHosts()
    connect = remotes.connect

    monkeypatch.setattr(deploy, "Remote", connect)
    monkeypatch.setattr(
        build,
        "build_systems",
        lambda hosts, on_progress: {h.name: build.BuiltSystem(h.name, NEW, 0.1) for h in hosts},
    )
    monkeypatch.setattr(nix, "copy_closure", lambda *args, **kwargs: None)
    monkeypatch.setattr(nix, "closure", lambda path: [nix.StorePath(str(NEW), 1000)])
    monkeypatch.setattr(activation, "new_id", lambda: "20261123T000000-abcdef")
    monkeypatch.setattr(deploy, "of_system", lambda system: (SITE,))
    monkeypatch.setattr(health, "check", lambda remote, address, sites, timeout: health.Report(True, ()))
    monkeypatch.setattr(host_system, "commit", lambda: "abc1234")
    monkeypatch.setattr(host_system, "who", lambda: {"user": "jane", "machine": "laptop"})
    monkeypatch.setattr(host_system, "now", lambda: "2026-11-23T00:00:00+00:00")
    return remotes


def run_deploy(host: Host, **options: Any) -> deploy.Result:
    [result] = deploy.deploy([host], deploy.Options(**options), Console(file=io.StringIO()))
    return result


def test_deploy_runs_these_commands_in_this_order(host: Host, fakes: FakeHosts) -> None:
    result = run_deploy(host)
    assert result.outcome == "deployed", result.message
    main, confirmation = fakes
    commands = main.commands
    activation_dir = "/run/djdeploy/activations/20261123T000000-abcdef"
    assert commands[0].startswith("printf")  # what the host runs
    assert commands[1].startswith(
        "mkdir -p /run/djdeploy && { mkdir /run/djdeploy/lock 2>/dev/null || exit 75; }"
    )
    assert '"id": "20261123T000000-abcdef"' in commands[1]
    assert commands[2] == "xargs -r nix-store --check-validity --print-invalid"
    assert commands[3].startswith(f"mkdir -p {activation_dir} && systemd-run ")
    started = shlex.split(commands[3].split(" && ", 1)[1])
    assert started[:8] == [
        "systemd-run",
        "--unit=djdeploy-activate-20261123T000000-abcdef",
        "--description=djdeploy activation",
        "--collect",
        "--no-ask-password",
        "--quiet",
        "--service-type=exec",
        f"--setenv=PATH={activation.SUPERVISOR_PATH}",
    ]
    assert started[8:10] == ["/bin/sh", "-c"]
    # id, new system, a new generation (not an existing one), seconds to wait for the check and confirmation
    assert started[11:] == ["djdeploy-activate", "20261123T000000-abcdef", str(NEW), "new", "25"]
    assert "deadline=" in commands[4]
    assert waits_for_the_switch(commands[4])
    # Confirmation goes over a second, new connection.
    assert confirmation.commands == [f"touch {activation_dir}/confirmed"]
    assert "deadline=" in commands[5]
    assert not waits_for_the_switch(commands[5])
    # The deploy log's line and the release of our own lock, in one command.
    assert commands[6].startswith("mkdir -p /var/lib/djdeploy && printf")
    assert ">> /var/lib/djdeploy/deploys.jsonl && { grep -qF '\"20261123T000000-abcdef\"'" in commands[6]
    assert commands[6].endswith("&& rm -rf /run/djdeploy/lock; true; }")
    assert len(commands) == 7
    assert result.generation == 2


def test_connections_open_while_the_systems_build(
    host: Host, fakes: FakeHosts, monkeypatch: pytest.MonkeyPatch
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


def test_unchanged_host_is_left_alone(host: Host, fakes: FakeHosts) -> None:
    fakes.current = NEW
    result = run_deploy(host)
    assert result.outcome == "unchanged"
    assert len(fakes[0].commands) == 1


def test_a_locked_host_is_refused_even_when_nothing_changed(host: Host, fakes: FakeHosts) -> None:
    fakes.current = NEW
    fakes.lock_owner = '{"user": "ana", "machine": "desk", "since": "2026-11-23T10:00:00+00:00"}'
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith("web1 is locked by another deploy: ana@desk since 2026-11-23T10:00:00")
    assert "inv unlock --host web1" in result.message
    assert len(fakes[0].commands) == 1  # refused at the comparison, before anything else


def test_a_failed_boot_default_is_reported_though_the_new_generation_runs(
    host: Host, fakes: FakeHosts
) -> None:
    fakes.boot_status = 1
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert "generation 2 runs and passed its checks, but making it the boot default failed" in result.message
    assert "switch-to-configuration boot exited with 1" in result.message
    recorded = next(command for command in fakes[0].commands if "deploys.jsonl" in command)
    assert '"outcome": "running, not the boot default"' in recorded
    assert recorded.endswith("rm -rf /run/djdeploy/lock; true; }")


def test_a_profile_that_cannot_be_set_switches_nothing(host: Host, fakes: FakeHosts) -> None:
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
    recorded = next(command for command in commands if "deploys.jsonl" in command)
    assert '"outcome": "not switched"' in recorded


def test_a_host_lost_during_the_activation_keeps_its_lock(
    host: Host, fakes: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(remote: object, activation_id: str, states: set[str], timeout: float) -> None:
        raise DjdeployError("Lost the SSH connection to web1")

    monkeypatch.setattr(activation, "wait_for", lost)
    result = run_deploy(host)
    assert result.outcome == "failed"
    assert result.message.startswith("web1: lost the host while its activation ran (Lost the SSH connection")
    assert "The deploy lock stays" in result.message
    commands = [command for remote in fakes for command in remote.commands]
    assert not any("rm -rf /run/djdeploy/lock" in command for command in commands)


def test_failed_health_check_rejects_and_reports_the_rollback(
    host: Host, fakes: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        health, "check", lambda *args: health.Report(False, ("https://example.test/healthz answered 502",))
    )
    fakes.state_after_confirm = "rolled-back"
    result = run_deploy(host)
    assert result.outcome == "rolled back"
    assert "rolled back to generation" in result.message
    assert "answered 502" in result.message
    commands = fakes[0].commands
    assert any(command.startswith("cat > /run/djdeploy/activations/") for command in commands)
    assert fakes[1].commands == []  # the confirmation's connection confirms nothing
    recorded = next(command for command in commands if "deploys.jsonl" in command)
    assert '"outcome": "rolled back"' in recorded  # the rollback is in the deploy log too
    assert '"generation": 1' in recorded  # the generation the host runs again
    assert recorded.endswith("rm -rf /run/djdeploy/lock; true; }")


def test_sudo_prefixes_privileged_commands_only(host: Host, fakes: FakeHosts) -> None:
    sudo_host = dataclasses.replace(host, ssh=SshSettings(user="deploy", sudo=True))
    run_deploy(sudo_host, sudo_password="secret")
    commands = fakes[0].commands
    assert commands[0].startswith("printf")
    assert commands[1].startswith("sudo mkdir -p /run/djdeploy")
    assert commands[2].startswith("xargs")  # reading the store needs no root
    assert commands[3].startswith("sudo mkdir -p /run/djdeploy/activations/")
    assert fakes[0].sudo_password == "secret"
    assert all("secret" not in command for command in commands)


def test_supervisor_script_rolls_back_without_confirmation() -> None:
    script = activation.SUPERVISOR
    assert f"dir={host_paths.ACTIVATION_DIR}/$id" in script
    assert 'nix-env -p "$profile" --switch-generation "$previous"' in script
    assert 'nix-env -p "$profile" --set "$new"' in script
    assert "no confirmation from the deployer" in script
    # systemd-run's unit would replace ${...} with an environment variable (mostly empty).
    assert "${" not in script


def test_facts_are_read_in_one_command() -> None:
    remote = FakeRemote(SshTarget("web1", "192.0.2.1"), generation=7)
    facts = host_system.facts(remote)  # type: ignore[arg-type]
    assert facts == host_system.Facts(OLD, OLD, 7)
    assert len(remote.commands) == 1


def test_generation_numbers_are_read_from_profile_links() -> None:
    assert host_system.generation_number("/nix/var/nix/profiles/system-12-link") == 12
    assert host_system.generation_number("system-x-link") is None
    assert host_system.generation_number("") is None


def test_sites_are_read_from_the_built_system(tmp_path: Path) -> None:
    manifest = tmp_path / host_paths.SITES_MANIFEST
    manifest.parent.mkdir(parents=True)
    entry = {
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
    manifest.write_text(json.dumps([entry]))
    assert sites.of_system(tmp_path) == (SITE,)
    assert sites.of_system(tmp_path / "elsewhere") == ()


def test_batches_stop_after_the_first_batch_with_a_failure(
    host: Host, fakes: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = dataclasses.replace(host, name="web2", address="192.0.2.2")
    later = [dataclasses.replace(host, name=name) for name in ("web3", "web4")]
    connect = fakes.connect

    def connect_or_fail(target: SshTarget, sudo_password: str | None = None) -> FakeRemote:
        if target.name == "web2":
            raise DjdeployError("Cannot reach web2")
        return connect(target, sudo_password)

    monkeypatch.setattr(deploy, "Remote", connect_or_fail)
    results = deploy.deploy([host, unreachable, *later], deploy.Options(batch=2), Console(file=io.StringIO()))
    assert [(result.host, result.outcome) for result in results] == [
        ("web1", "deployed"),
        ("web2", "failed"),
        ("web3", "skipped"),
        ("web4", "skipped"),
    ]
    assert results[1].message == "Cannot reach web2"
