"""Lab code that runs without root or containers: names, addresses, checks, the image recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from rich.console import Console

from djdeploy.errors import DjdeployError
from djdeploy.lab import control, image, network
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import process
from tests.lab.helpers import REPO


@pytest.fixture
def layout(tmp_path: Path) -> LabLayout:
    return LabLayout(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")


def test_hosts_have_fixed_names_namespaces_and_addresses(layout: LabLayout) -> None:
    host = layout.host(3)
    assert (host.name, host.netns, host.host_link) == ("lab3", "djlab-lab3", "djlab3")
    assert (host.address, host.gateway) == ("10.231.3.2", "10.231.3.1")
    assert host.root == layout.state_dir / "hosts" / "lab3" / "root"


@pytest.mark.parametrize("count", [0, -1, 9, 99])
def test_host_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(DjdeployError, match=r"out of range.*1 to 8"):
        control.check_host_count(count)


@pytest.mark.parametrize("count", [1, 8])
def test_host_count_in_range_is_accepted(count: int) -> None:
    control.check_host_count(count)


def test_up_without_root_says_what_to_do_and_makes_nothing(
    layout: LabLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(DjdeployError, match=r"needs root.*sudo djdeploy lab.up"):
        control.up(layout, 1, Console(file=None))
    assert not layout.state_dir.exists()
    assert not layout.cache_dir.exists()


def test_missing_tools_are_named_with_the_packages_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "systemd-nspawn" else f"/usr/bin/{tool}")
    with pytest.raises(DjdeployError, match=r"apt-get install systemd-container"):
        control.check_can_run()


def test_missing_debootstrap_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: None if tool == "debootstrap" else f"/usr/bin/{tool}")
    with pytest.raises(DjdeployError, match=r"apt-get install debootstrap"):
        control.check_can_run()


def test_labs_side_by_side_never_share_names_or_addresses(tmp_path: Path) -> None:
    first = LabLayout(tmp_path, tmp_path, instance=0).host(1)
    second = LabLayout(tmp_path, tmp_path, instance=2).host(1)
    assert (second.netns, second.host_link, second.address) == ("djlab2x-lab1", "djlab2x1", "10.233.1.2")
    assert {first.netns, first.host_link, first.address}.isdisjoint(
        {second.netns, second.host_link, second.address}
    )
    assert LabLayout(tmp_path, tmp_path, instance=2).index_of_namespace("djlab-lab1") is None
    assert LabLayout(tmp_path, tmp_path, instance=0).index_of_link("djlab2x1") is None


def test_image_is_rebuilt_when_its_recipe_changes(layout: LabLayout) -> None:
    before = image.image_path(layout)
    assert before == image.image_path(layout)
    changed = dataclasses.replace(image.DEBIAN_12, runtime_packages=(*image.RUNTIME_PACKAGES, "htop"))
    assert image.image_path(layout, changed) != before


def test_link_names_are_read_from_ip_output(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = (
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n"
        "7: djlab2@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
        "9: djlabx@if2: <BROADCAST> mtu 1500\n"
    )
    monkeypatch.setattr("djdeploy.remote.process.output", lambda argv: listing)
    assert network.links() == {"lo", "djlab2", "djlabx"}
    assert network.lab_links(LabLayout(Path("/c"), Path("/s"))) == {"djlab2": 2}


def test_a_python_other_than_the_hosts_is_refused_naming_both(tmp_path: Path) -> None:
    other_python = tmp_path / "python3"
    other_python.write_text("#!/bin/sh\necho 3.13\n")
    other_python.chmod(0o755)
    with pytest.raises(DjdeployError, match=r"Python 3\.11.*which is Python 3\.13 here"):
        image.require_host_python(str(other_python))
    with pytest.raises(DjdeployError, match=r"which is missing here"):
        image.require_host_python(str(tmp_path / "absent"))


def test_the_hosts_python_is_accepted() -> None:
    image.require_host_python()


def test_reboot_of_a_host_that_is_not_up_names_the_lab_hosts(
    layout: LabLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/bin/{tool}")
    (layout.hosts_dir / "lab1").mkdir(parents=True)  # a host whose root is not mounted: not up
    with pytest.raises(
        DjdeployError, match=r"no lab host lab1 to reboot \(lab hosts: none\).*lab\.up --hosts N"
    ):
        control.reboot(layout, "lab1", Console(file=None))


def test_the_lab_guards_exactly_its_own_subnets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(process, "run", lambda argv, **options: ran.append(list(argv)))
    fourth = LabLayout(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", instance=4)
    network.guard(fourth)
    # One /24 per possible host of lab instance 4 (10.235.N.0/24, N = 1..8): never anything wider, which
    # would take the machine's own 10.x networks (its DNS resolver) too.
    assert ran == [
        ["ip", "route", "replace", "unreachable", f"10.235.{index}.0/24", "metric", "4231"]
        for index in range(1, 9)
    ]
    ran.clear()
    # Removes only what guard added: another metric, another subnet or another lab's stay.
    listing = (
        "unreachable 10.235.1.0/24 metric 4231 \n"
        "unreachable 10.235.2.0/24 metric 100 \n"
        "unreachable 10.231.1.0/24 metric 4231 \n"
        "unreachable 10.235.8.0/24 metric 4231 \n"
    )
    monkeypatch.setattr(process, "output", lambda argv, **options: listing)
    network.unguard(fourth)
    assert ran == [
        ["ip", "route", "del", "unreachable", "10.235.1.0/24", "metric", "4231"],
        ["ip", "route", "del", "unreachable", "10.235.8.0/24", "metric", "4231"],
    ]


@pytest.mark.parametrize(
    ("variable", "cache"), [("", "/var/cache/djdeploy/wheels"), ("/srv/wheels", "/srv/wheels")]
)
def test_the_wheel_cache_is_the_one_djdeploy_lab_wheels_names_for_hosts_and_builds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, cache: str
) -> None:
    monkeypatch.setenv("DJDEPLOY_LAB_WHEELS", variable)
    assert LabLayout.from_environment().wheel_cache == Path(cache)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("django==5.2.19\n")
    expression = (
        f"(import {REPO}/nix/lab/packages.nix {{ }}).pythonDeps "
        f'{{ name = "deps"; requirements = {requirements}; }}'
    )
    built_with = process.run(["nix-instantiate", "--eval", "--expr", f"({expression}).wheelCache"]).stdout
    assert built_with.strip() == f'"{cache}"'
