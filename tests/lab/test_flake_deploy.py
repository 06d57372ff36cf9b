"""End to end: `inv deploy` of a host whose inventory entry says `build: {flake: ...}`, as real servers' do,
with the lab's hosts as a flake (nix/lab/flake.nix)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from djdeploy import inventory
from djdeploy.deploy import nix
from djdeploy.host import paths as host_paths
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote
from tests.lab.flake import lab_flake_reference
from tests.lab.test_deploy import deploy, deploy_log, generation, page, said

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def flake_inventory(lab: LabLayout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's own inventory (its SSH settings and Nix options), lab1 built from the lab flake."""
    lab_inventory = yaml.safe_load(lab.inventory.read_text())
    lab_inventory["hosts"] = {
        "lab1": {"address": lab.host(1).address, "build": {"flake": lab_flake_reference("lab1")}},
    }
    path = tmp_path_factory.mktemp("flake-deploy") / "inventory.yaml"
    path.write_text(yaml.safe_dump(lab_inventory))
    return path


@pytest.fixture(scope="module")
def flake_system() -> str:
    """The store path of lab1's system as the flake itself gives it."""
    reference = lab_flake_reference("lab1") + ".config.system.build.toplevel.outPath"
    return subprocess.run(
        [*nix.NIX_COMMAND, "eval", "--raw", reference],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout


@pytest.fixture(scope="module")
def deployed(flake_inventory: Path) -> inventory.Host:
    result = deploy(flake_inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    return inventory.load(flake_inventory).hosts["lab1"]


def current_system(host: inventory.Host) -> str:
    with Remote(host.ssh_target) as remote:
        return remote.run(["readlink", host_paths.CURRENT_SYSTEM]).stdout.strip()


def test_a_flake_host_switches_to_the_flake_built_system(deployed: inventory.Host, flake_system: str) -> None:
    assert flake_system.startswith("/nix/store/")
    assert current_system(deployed) == flake_system
    assert generation(deployed) == "system-1-link"
    [entry] = deploy_log(deployed)
    assert entry["outcome"] == "success"
    assert entry["system"] == flake_system
    assert 'id="release">1.0.0<' in page(deployed)


def test_the_flake_and_the_lab_file_build_the_same_system(lab: LabLayout, deployed: inventory.Host) -> None:
    # The lab's own inventory builds lab1 from nix/lab/hosts.nix: nothing is left to change.
    result = deploy(lab.inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing changed: lab1 already runs" in said(result)
    assert generation(deployed) == "system-1-link"
