"""Building elsewhere (`build.on`): the inventory key, the platform check, and the exact commands."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from djdeploy.deploy import build, nix, platform, remote_build, toplevel
from djdeploy.errors import DjdeployError
from djdeploy.inventory import (
    BuildOn,
    BuildPlace,
    BuildSpec,
    Host,
    InventoryError,
    Timeouts,
    load,
)
from djdeploy.remote.ssh import SshSettings, SshTarget
from djdeploy.tasks import deploy as deploy_tasks
from tests import fake_ssh
from tests.fake_ssh import Answer, FakeHost, FakeNetwork

INVENTORY = """\
defaults:
  ssh:
    known_hosts: ./known_hosts
    identity: ./id_ed25519
  build:
    file: hosts.nix
    on: builder
hosts:
  builder:
    address: 192.0.2.9
    ssh: {user: nix, sudo: true}
  web1:
    address: 192.0.2.1
    build: {attribute: web1}
  web2:
    address: 192.0.2.2
    build: {attribute: web2, on: target}
  web3:
    address: 192.0.2.3
    build: {attribute: web3, on: ci@big.example.com}
  web4:
    address: 192.0.2.4
    build: {attribute: web4, on: local}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def test_build_on_names_local_the_target_a_host_of_the_inventory_or_user_at_host(tmp_path: Path) -> None:
    hosts = load(write(tmp_path, INVENTORY)).hosts
    assert hosts["web1"].build.on == BuildOn(BuildPlace.BUILD_HOST, hosts["builder"].ssh_target)
    assert hosts["web2"].build.on == BuildOn(BuildPlace.TARGET)
    # A builder outside the inventory is reached with the host's own known_hosts and key.
    assert hosts["web3"].build.on == BuildOn(
        BuildPlace.BUILD_HOST,
        SshTarget(
            "big.example.com",
            "big.example.com",
            SshSettings(user="ci", known_hosts=tmp_path / "known_hosts", identity=tmp_path / "id_ed25519"),
        ),
    )
    assert hosts["web4"].build.on == BuildOn()
    # The build host builds its own system where it is.
    assert hosts["builder"].build.on == BuildOn(BuildPlace.TARGET)


def test_an_unknown_builder_is_an_error_naming_the_line_and_the_choices(tmp_path: Path) -> None:
    text = INVENTORY.replace("on: target", "on: tagret")
    with pytest.raises(InventoryError) as refused:
        load(write(tmp_path, text))
    assert refused.value.message == (
        f"{tmp_path}/inventory.yaml:17 hosts.web2.build.on: expected local, target, a host of the "
        "inventory (builder, web1, web2, web3, web4) or user@host, got 'tagret'"
    )


def test_build_on_from_the_command_line_replaces_the_inventory(tmp_path: Path) -> None:
    known = load(write(tmp_path, INVENTORY))
    hosts = deploy_tasks.building_on("target", [known.hosts["web1"], known.hosts["web4"]], known)
    assert [host.build.on for host in hosts] == [BuildOn(BuildPlace.TARGET)] * 2
    with pytest.raises(DjdeployError, match=r"^--build-on: expected local, target, a host"):
        deploy_tasks.building_on("no such host", hosts, known)


def test_the_platforms_come_from_the_nix_configuration_and_its_remote_builders() -> None:
    config = (
        "builders = @/etc/nix/machines\nextra-platforms = i686-linux\nmax-jobs = 4\nsystem = x86_64-linux\n"
    )
    machines = "# builders\nssh://mac aarch64-darwin,x86_64-darwin 4\nssh://big - 8\n"
    platforms = platform.parse_config(config, lambda path: machines)
    assert platforms == platform.Platforms(
        "x86_64-linux",
        frozenset({"i686-linux"}),
        frozenset({"aarch64-darwin", "x86_64-darwin", "x86_64-linux"}),
    )
    assert platforms.builds("i686-linux")
    assert platforms.builds("aarch64-darwin")
    assert not platforms.builds("aarch64-linux")

    def missing(path: str) -> str:
        raise FileNotFoundError(path)

    assert platform.parse_config(config, missing).remote_builders == frozenset()


ADDRESSES = {"web1": "192.0.2.1", "web2": "192.0.2.2", "web3": "192.0.2.3", "web4": "192.0.2.4"}
LOCAL = BuildOn()
BUILDER = SshTarget("builder", "192.0.2.9", SshSettings(user="nix", sudo=True))


def host(name: str, on: BuildOn = LOCAL) -> Host:
    spec = BuildSpec(file=Path("hosts.nix"), attribute=name, on=on)
    return Host(name, ADDRESSES[name], SshSettings(), spec, Timeouts())


def test_a_system_this_machine_cannot_build_is_refused_in_one_paragraph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform, "local", lambda: platform.Platforms("aarch64-darwin"))
    with pytest.raises(platform.PlatformError) as refused:
        platform.require_buildable([host("web4")], {"web4": "x86_64-linux"})
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith(
        "web4 needs a system built for x86_64-linux, but this machine builds for aarch64-darwin, so nothing "
        "was built."
    )
    assert "`build: {on: target}`" in message
    assert "`builders = ssh://user@builder x86_64-linux`" in message
    # Hosts that build elsewhere are not this machine's concern.
    platform.require_buildable([host("web4", BuildOn(BuildPlace.TARGET))], {"web4": "x86_64-linux"})


class FakeBuilder(FakeHost):
    """A host that builds: answers nix-store --realise as Nix does, its log on the standard error."""

    sudo_asks_password = True
    # What every fake builder's Nix says, and its exit code.
    log: ClassVar[str] = "these 2 derivations will be built:\nbuilding '/nix/store/{}-example-site.drv'...\n"
    exit_code: ClassVar[int] = 0

    def answer(self, command: str) -> Answer:
        drvs = [word for word in shlex.split(command) if word.endswith(".drv")]
        stdout = "".join(drv.removesuffix(".drv") + "\n" for drv in drvs)
        return Answer(stdout, self.exit_code, self.log.format("e" * 32))


DRV = {
    name: Path(f"/nix/store/{letter * 32}-lab-system-{name}.drv")
    for name, letter in zip(("web1", "web2", "web3"), "abc", strict=True)
}
BUILDERS = ("192.0.2.9", "192.0.2.1", "192.0.2.2", "192.0.2.3")


@pytest.fixture
def builders(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    """The build host and web1..web3, each a FakeBuilder over the one SSH seam."""
    return fake_ssh.install(monkeypatch, {address: FakeBuilder() for address in BUILDERS})


@pytest.fixture
def local_commands(
    monkeypatch: pytest.MonkeyPatch, builders: FakeNetwork
) -> list[tuple[list[str], dict[str, Any]]]:
    commands: list[tuple[list[str], dict[str, Any]]] = []

    def run(argv: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        commands.append((argv, options))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr("djdeploy.remote.process.run", run)
    return commands


def test_a_build_host_builds_its_hosts_systems_in_one_call_after_their_derivations_are_copied(
    local_commands: list[tuple[list[str], dict[str, Any]]], builders: FakeNetwork
) -> None:
    builder = BUILDER
    on = BuildOn(BuildPlace.BUILD_HOST, builder)
    hosts = [host("web1", on), host("web3", on)]
    derivations = {name: build.Derivation(name, DRV[name], "x86_64-linux") for name in ("web1", "web3")}
    progress: list[str] = []
    systems = remote_build.build_elsewhere(
        hosts, derivations, "secret", progress.append, parallel=4, started=0.0
    )
    [(copy, copy_options)] = local_commands
    assert copy == [
        *nix.NIX_COMMAND,
        "copy",
        "--derivation",
        "--to",
        "ssh://nix@192.0.2.9",
        str(DRV["web1"]),
        str(DRV["web3"]),
    ]
    assert shlex.split(copy_options["env"]["NIX_SSHOPTS"])[:4] == [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]
    [connection] = builders.connections
    assert (connection.host, connection.user) == ("192.0.2.9", "nix")
    [sent, checked] = connection.sent
    assert sent.command == f"nix-store --realise {DRV['web1']} {DRV['web3']}"
    # What it built is asked there whether it is a system (a toplevel has nixos-version).
    outputs = [Path(str(DRV[name]).removesuffix(".drv")) for name in ("web1", "web3")]
    assert checked.command == toplevel.missing_version_command(outputs)
    # Through sudo, as on a target, with the password on sudo's standard input.
    assert (sent.privileged, sent.input_text) == (True, "secret\n")
    assert progress == ["1/2 example-site"]
    assert {name: system.path for name, system in systems.items()} == {
        name: Path(str(DRV[name]).removesuffix(".drv")) for name in ("web1", "web3")
    }


def test_targets_build_their_own_systems(
    local_commands: list[tuple[list[str], dict[str, Any]]], builders: FakeNetwork
) -> None:
    hosts = [host("web1", BuildOn(BuildPlace.TARGET)), host("web2", BuildOn(BuildPlace.TARGET))]
    derivations = {name: build.Derivation(name, DRV[name], "x86_64-linux") for name in ("web1", "web2")}
    remote_build.build_elsewhere(hosts, derivations, None, lambda text: None, parallel=1, started=0.0)
    assert sorted(connection.host for connection in builders.connections) == ["192.0.2.1", "192.0.2.2"]
    assert sorted(argv[-1] for argv, _ in local_commands) == [str(DRV["web1"]), str(DRV["web2"])]
    assert {connection.host: connection.commands[0] for connection in builders.connections} == {
        "192.0.2.1": f"nix-store --realise {DRV['web1']}",
        "192.0.2.2": f"nix-store --realise {DRV['web2']}",
    }


def test_a_failed_build_on_a_build_host_names_the_error_and_the_builder(
    local_commands: list[tuple[list[str], dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = "noise\n" * 100 + "error: builder for '/nix/store/x-site.drv' failed with exit code 3\n"
    monkeypatch.setattr(FakeBuilder, "log", failing)
    monkeypatch.setattr(FakeBuilder, "exit_code", 1)
    hosts = [host("web2", BuildOn(BuildPlace.TARGET))]
    derivations = {"web2": build.Derivation("web2", DRV["web2"], "x86_64-linux")}
    with pytest.raises(build.BuildError) as failed:
        remote_build.build_elsewhere(hosts, derivations, None, lambda text: None, parallel=1, started=0.0)
    message = failed.value.message
    assert message.startswith(
        "Building the system of web2 on web2 (root@192.0.2.2:22) failed. What the build said:\n"
    )
    assert "error: builder for '/nix/store/x-site.drv' failed with exit code 3" in message
    assert len(message.splitlines()) < 30


def test_a_build_host_copies_to_the_target_itself_with_the_deployers_key_and_host_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("192.0.2.1 ssh-ed25519 AAAAC3NzaWeb1\n192.0.2.9 ssh-ed25519 AAAAC3NzaBuilder\n")
    identity = tmp_path / "id_ed25519"
    builder = SshTarget(
        "builder", "192.0.2.9", SshSettings("nix", known_hosts=known_hosts, identity=identity)
    )
    target = SshTarget("web1", "192.0.2.1", SshSettings(known_hosts=known_hosts, identity=identity))
    streamed: list[list[str]] = []

    def stream(argv: list[str], on_line: Callable[[str], None], **options: Any) -> str:
        streamed.append(argv)
        on_line("copying path '/nix/store/abc-site' to 'ssh://root@192.0.2.1'...")
        return ""

    monkeypatch.setattr("djdeploy.remote.process.stream", stream)
    copied: list[str] = []
    system = Path("/nix/store/" + "s" * 32 + "-lab-system-web1")
    nix.copy_between(builder, target, system, on_path=copied.append)
    [argv] = streamed
    # An agent of this copy alone holds the inventory's key, and the build host uses it forwarded.
    assert argv[:6] == [
        "ssh-agent",
        "sh",
        "-c",
        'ssh-add -q "$1" 2>/dev/null && shift && exec "$@"',
        "sh",
        str(identity),
    ]
    assert argv[6:-2] == ["ssh", *nix.ssh_options(builder), "-o", "ForwardAgent=yes"]
    assert argv[-2] == "nix@192.0.2.9"
    # The shipped script runs there, with web1's own known_hosts line alone, which it checks strictly.
    assert shlex.split(argv[-1]) == [
        "sh",
        "-c",
        nix.copy_to_host_script(),
        "copy-to-host",
        "ssh://root@192.0.2.1",
        "22",
        str(system),
        "192.0.2.1 ssh-ed25519 AAAAC3NzaWeb1",
    ]
    assert copied == ["/nix/store/abc-site"]


def test_the_sudo_password_is_asked_for_a_build_host_of_the_inventory_too(tmp_path: Path) -> None:
    known = load(write(tmp_path, INVENTORY))
    hosts = [known.hosts[name] for name in ("web1", "web2", "web3")]
    # web1 builds on `builder` (ssh.sudo), web2 on itself, web3 on a machine outside the inventory.
    assert deploy_tasks.builders(hosts, known) == [known.hosts["builder"]]


def test_the_build_hosts_script_copies_with_the_given_host_keys_alone(tmp_path: Path) -> None:
    """copy_to_host.sh, with a stand-in for nix that shows what it was given."""
    fake_nix = tmp_path / "nix"
    fake_nix.write_text(
        '#!/bin/sh\necho "args: $*"\necho "opts: $NIX_SSHOPTS"\n'
        'known=${NIX_SSHOPTS##*UserKnownHostsFile=}\ncat "$known"\n'
    )
    fake_nix.chmod(0o755)
    result = subprocess.run(
        [
            "sh",
            "-c",
            nix.copy_to_host_script(),
            "copy-to-host",
            "ssh://root@192.0.2.1",
            "2222",
            "/nix/store/x-sys",
            "192.0.2.1 ssh-ed25519 AAAA1",
            "192.0.2.1 ssh-rsa AAAA2",
        ],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    args, opts, *keys = result.stdout.splitlines()
    assert args == (
        "args: --extra-experimental-features nix-command flakes copy -v --to ssh://root@192.0.2.1 "
        "/nix/store/x-sys"
    )
    assert opts.startswith(
        "opts: -o StrictHostKeyChecking=yes -o BatchMode=yes -p 2222 -o UserKnownHostsFile=/"
    )
    assert keys == ["192.0.2.1 ssh-ed25519 AAAA1", "192.0.2.1 ssh-rsa AAAA2"]
    # The file of keys is gone once the copy ends.
    assert not Path(opts.rsplit("=", 1)[1]).exists()


def test_what_a_target_built_that_is_no_system_is_refused_there(
    local_commands: list[tuple[list[str], dict[str, Any]]], builders: FakeNetwork
) -> None:
    class BuildsAPackage(FakeBuilder):
        def answer(self, command: str) -> Answer:
            if command.startswith("for path in"):
                return Answer(str(DRV["web1"]).removesuffix(".drv") + "\n")
            return super().answer(command)

    builders.hosts["192.0.2.1"] = BuildsAPackage()
    derivations = {"web1": build.Derivation("web1", DRV["web1"], "x86_64-linux")}
    hosts = [host("web1", BuildOn(BuildPlace.TARGET))]
    with pytest.raises(toplevel.NotASystem, match="which is not a NixOS system"):
        remote_build.build_elsewhere(hosts, derivations, None, lambda text: None, parallel=1, started=0.0)
