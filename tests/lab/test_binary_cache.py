"""End to end: a fleet deployed through the lab's binary cache (`inv lab.up --cache`): each host fetches the
closure from the cache itself, a host that cannot reach it gets the direct copy, a wrong key is refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from djdeploy import inventory
from djdeploy.deploy import nix
from djdeploy.host import paths as host_paths
from djdeploy.lab import binary_cache, control
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote, port_open
from tests.lab.helpers import inv, lab_hosts, write_inventory

pytestmark = pytest.mark.lab

HOSTS = ("lab1", "lab2", "lab3")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabLayout]:
    with lab_hosts(len(HOSTS), cache=True) as layout:
        yield layout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("binary-cache")


def deploy(inventory_path: Path, host: str) -> subprocess.CompletedProcess[str]:
    return inv("deploy", "--inventory", str(inventory_path), "--host", host, check=False)


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).replace("│", " ").split())


def on_host(host: inventory.Host, argv: list[str]) -> str:
    with Remote(host.ssh_target) as remote:
        return remote.run(argv).stdout


def with_cache(path: Path, host: str, **cache: str) -> Path:
    """The inventory at path with keys of the cache section changed (for one host, or all: host "")."""
    loaded = yaml.safe_load(path.read_text())
    if host:
        loaded["hosts"][host]["cache"] = cache
    else:
        loaded["defaults"]["cache"].update(cache)
    path.write_text(yaml.safe_dump(loaded))
    return path


def test_each_host_fetches_the_closure_from_the_cache_and_nothing_is_copied(lab: LabLayout) -> None:
    result = deploy(lab.inventory, ",".join(HOSTS))
    assert result.returncode == 0, result.stdout + result.stderr
    text = said(result)
    assert "✓ push to the cache" in text
    assert "copy the closure" not in text
    hosts = inventory.load(lab.inventory).hosts
    requests = [json.loads(line)["request"] for line in binary_cache.access_log(lab).read_text().splitlines()]
    for name in HOSTS:
        assert f"{name} ✓ fetch the closure from the cache" in text
        system = on_host(hosts[name], ["readlink", "-f", host_paths.SYSTEM_PROFILE]).strip()
        # The path came from the cache: the host's store holds the cache's signature of it, which only the
        # narinfo it downloaded carries (this machine's own store has no signature of it)...
        info = json.loads(on_host(hosts[name], [*nix.NIX_COMMAND, "path-info", "--json", "--sigs", system]))
        signatures = info[0].get("signatures", [])
        assert any(sig.startswith(f"{binary_cache.key_name(lab)}:") for sig in signatures), info
        # ...and Caddy served that narinfo, and its NAR, to this host.
        narinfo = f"/{Path(system).name.split('-', 1)[0]}.narinfo"
        from_host = [r["uri"] for r in requests if r["remote_ip"] == hosts[name].address]
        assert narinfo in from_host, from_host
        assert any(uri.startswith("/nar/") for uri in from_host), from_host


def test_a_host_that_cannot_reach_the_cache_gets_the_direct_copy(lab: LabLayout, workspace: Path) -> None:
    path = write_inventory(lab, workspace, "unreachable-cache", number=2)
    # Nothing listens on that port: the host cannot reach the cache, as behind a firewall.
    with_cache(path, "lab2", substitute=f"http://{lab.host(2).gateway}:9")
    result = deploy(path, "lab2")
    assert result.returncode == 0, result.stdout + result.stderr
    text = said(result)
    assert "✓ copy the closure (the host cannot reach the cache: unable to download" in text, text
    assert "fetch the closure from the cache" not in text


def test_a_path_signed_with_a_key_the_host_does_not_trust_is_refused(lab: LabLayout, workspace: Path) -> None:
    wrong_key = workspace / "wrong.sec"
    subprocess.run(
        ["nix-store", "--generate-binary-cache-key", "wrong-1", str(wrong_key), str(workspace / "wrong.pub")],
        check=True,
    )
    path = write_inventory(lab, workspace, "wrong-key", number=3, healthCheckPath='"/?wrong-key"')
    with_cache(path, "", signing_key=str(wrong_key))
    host = inventory.load(path).hosts["lab3"]
    before = on_host(host, ["readlink", host_paths.SYSTEM_PROFILE])
    result = deploy(path, "lab3")
    assert result.returncode == 1, result.stdout + result.stderr
    text = said(result)
    assert "lab3 reached the cache" in text, text
    assert "so nothing was switched" in text
    assert "lacks a valid signature" in text, text
    assert on_host(host, ["readlink", host_paths.SYSTEM_PROFILE]) == before


def test_lab_down_leaves_nothing_of_the_cache(lab: LabLayout) -> None:
    caddy = int((binary_cache.directory(lab) / "caddy.pid").read_text())
    assert port_open(binary_cache.address(lab), binary_cache.PORT, timeout=5)
    inv("lab.down")
    assert not binary_cache.directory(lab).exists()  # store, key pair, Caddy's files
    assert not Path(f"/proc/{caddy}").exists()
    # Nothing listens on the port (lab1's veth, and its address, are gone with the lab).
    listening = subprocess.run(
        ["ss", "-H", "-l", "-t", "-n", f"sport = :{binary_cache.PORT}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listening.strip() == ""
    assert "cache" not in control.inventory_defaults(lab, "example")
