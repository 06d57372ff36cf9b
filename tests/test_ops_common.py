"""What the tasks share: where the inventory is, which hosts and sites, the words after `--`."""

from __future__ import annotations

from pathlib import Path

import pytest

from djdeploy.errors import DjdeployError
from djdeploy.host import sites
from djdeploy.tasks import common
from tests.test_ops_fakes import EXAMPLE_SITE, Host, connected, site_entry, use_inventory


def test_inventory_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJDEPLOY_INVENTORY", "/from/environment.yaml")
    assert common.inventory_path("given.yaml") == Path("given.yaml")
    assert common.inventory_path(None) == Path("/from/environment.yaml")
    monkeypatch.delenv("DJDEPLOY_INVENTORY")
    assert common.inventory_path(None) == Path("inventory.yaml")


def test_hosts_by_name_or_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_inventory(tmp_path, monkeypatch)
    assert [host.name for host in common.select_hosts(None, None, None)] == ["lab1", "lab2"]
    assert [host.name for host in common.select_hosts(None, None, "@web")] == ["lab2"]
    assert common.one_host(None, "lab2").name == "lab2"
    with pytest.raises(DjdeployError, match="either --host or --on"):
        common.select_hosts(None, "lab1", "@web")
    with pytest.raises(DjdeployError, match="exactly one host"):
        common.one_host(None, "lab1,lab2")


def test_sudo_password_only_for_sudo_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_inventory(tmp_path, monkeypatch)
    monkeypatch.delenv(common.SUDO_PASSWORD_ENV, raising=False)
    assert common.sudo_password(common.select_hosts(None, "lab2", None)) is None
    # lab1 logs in with sudo; with no terminal to ask on, the password is empty (passwordless sudo).
    assert common.sudo_password(common.select_hosts(None, None, None)) == ""
    monkeypatch.setenv(common.SUDO_PASSWORD_ENV, "secret")
    assert common.sudo_password(common.select_hosts(None, None, None)) == "secret"


def test_manifest_sites_filtered_by_the_inventory_and_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, connection = connected(monkeypatch, Host(sites=[EXAMPLE_SITE, site_entry("blog", aliases=[])]))
    host_sites = sites.read(remote)
    assert connection.commands == [f"cat {sites.MANIFEST_PATH}"]
    assert [site.name for site in host_sites] == ["example", "blog"]
    assert host_sites[0].database == sites.Database("example", "example")
    assert host_sites[1].canonical_url == "https://blog.test"
    assert [site.name for site in sites.of_inventory(host_sites, ["blog"])] == ["blog"]
    assert sites.pick(host_sites, "blog", "lab1").name == "blog"
    with pytest.raises(DjdeployError, match="several sites"):
        sites.pick(host_sites, None, "lab1")
    with pytest.raises(DjdeployError, match="runs no Django site"):
        sites.pick((), None, "lab1")


def test_a_host_without_manifest_says_to_deploy_first(monkeypatch: pytest.MonkeyPatch) -> None:
    remote, _ = connected(monkeypatch, Host(sites=None))
    with pytest.raises(DjdeployError, match="no sites manifest"):
        sites.read(remote)


def test_a_malformed_manifest_is_a_readable_error() -> None:
    with pytest.raises(DjdeployError, match="not what this djdeploy expects"):
        sites.parse_manifest('[{"name": "x"}]', "of lab1")
    with pytest.raises(DjdeployError, match="not what this djdeploy expects"):
        sites.parse_manifest("not json", "of lab1")
