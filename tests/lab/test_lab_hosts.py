"""End to end: two real lab hosts, commands over djdeploy's SSH layer, nix copy, and a clean tear-down."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.deploy import nix
from djdeploy.lab import machine, network
from djdeploy.lab import project as lab_project
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote, UnknownHostKeyError
from tests.lab.helpers import REPO, build, inv

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[inventory.Inventory]:
    inv("lab.up", "--hosts", "2")
    try:
        yield inventory.load(LabLayout.from_environment().inventory)
    finally:
        inv("lab.down")


def test_commands_run_on_each_host_over_ssh(two_hosts: inventory.Inventory) -> None:
    for name in ("lab1", "lab2"):
        with Remote(two_hosts.hosts[name].ssh_target) as remote:
            assert remote.run(["cat", "/etc/hostname"]).stdout.strip() == name
            assert remote.run(["systemctl", "is-active", "postgresql", "ssh"]).stdout.split() == [
                "active",
                "active",
            ]


def test_nix_copy_reaches_only_the_target_host(two_hosts: inventory.Inventory, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    expression = tmp_path / "marker.nix"
    expression.write_text(
        'derivation { name = "lab-marker"; system = builtins.currentSystem; builder = "/bin/sh";'
        f' args = [ "-c" "echo {marker} > $out" ]; }}\n'
    )
    path = build(expression)
    nix.copy_closure(two_hosts.hosts["lab1"].ssh_target, path)
    with Remote(two_hosts.hosts["lab1"].ssh_target) as lab1:
        assert lab1.run(["cat", str(path)]).stdout.strip() == marker
        assert lab1.run(["nix-store", "--check-validity", str(path)], check=False).ok
    with Remote(two_hosts.hosts["lab2"].ssh_target) as lab2:
        assert not lab2.run(["nix-store", "--check-validity", str(path)], check=False).ok


def test_unknown_host_key_is_refused(two_hosts: inventory.Inventory, tmp_path: Path) -> None:
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    target = two_hosts.hosts["lab1"].ssh_target
    stranger = dataclasses.replace(target, ssh=dataclasses.replace(target.ssh, known_hosts=empty_known_hosts))
    with pytest.raises(UnknownHostKeyError, match="SHA256:") as refused:
        Remote(stranger).open()
    assert "ssh-keyscan" in refused.value.message


def test_lab_status_shows_both_hosts(two_hosts: inventory.Inventory) -> None:
    listing = inv("lab.status").stdout
    layout = LabLayout.from_environment()
    assert layout.host(1).address in listing
    assert layout.host(2).address in listing
    assert listing.count("running") == 2


def test_down_leaves_nothing_behind() -> None:
    layout = LabLayout.from_environment()
    inv("lab.up", "--hosts", "1")
    # What lab.rehearse writes for a project before it deploys it.
    lab_project.write_inventory(
        layout, lab_project.load(REPO / "tests/lab/cookiecutter_project/lab.yaml"), ["lab1"]
    )
    inv("lab.down")
    assert network.lab_namespaces(layout) == {}
    assert network.lab_links(layout) == {}
    assert machine.lab_mounts(layout) == []
    assert machine.nspawn_pids(layout) == []
    assert not layout.state_dir.exists()


def test_up_cleans_what_a_killed_run_left() -> None:
    layout = LabLayout.from_environment()
    inv("lab.up", "--hosts", "1")
    for pid in machine.nspawn_pids(layout):
        os.kill(pid, 9)
    # The killed container left its overlay mount, namespace and veth behind.
    assert machine.lab_mounts(layout)
    try:
        inv("lab.up", "--hosts", "1")
        assert "running" in inv("lab.status").stdout
    finally:
        inv("lab.down")
    assert network.lab_namespaces(layout) == {}
    assert machine.lab_mounts(layout) == []


def test_bad_host_counts_are_refused_before_anything_is_made() -> None:
    layout = LabLayout.from_environment()
    for count in ("0", "99"):
        result = inv("lab.up", "--hosts", count, check=False)
        assert result.returncode == 1
        assert "out of range" in result.stderr
        assert "1 to 8" in result.stderr
    assert network.lab_namespaces(layout) == {}
