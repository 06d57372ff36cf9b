"""The lab's binary cache without root: Caddy's configuration, the hosts' nix.conf, the inventory's cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from djdeploy import inventory
from djdeploy.lab import binary_cache, control
from djdeploy.lab.layout import LabLayout
from tests.test_nix_module import caddy_binary


@pytest.fixture
def layout(tmp_path: Path) -> LabLayout:
    return LabLayout(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", instance=6)


def test_caddy_listens_only_on_this_machines_end_of_lab1s_veth(layout: LabLayout) -> None:
    text = binary_cache.caddyfile_text(layout)
    assert binary_cache.address(layout) == layout.host(1).gateway == "10.237.1.1"
    assert f"\tbind {layout.host(1).gateway}\n" in text
    assert "0.0.0.0" not in text
    assert "\tadmin off\n" in text  # no admin endpoint on localhost:2019, which labs side by side would share
    assert f"\troot * {binary_cache.store(layout)}\n" in text
    assert binary_cache.url(layout) == "http://10.237.1.1:7431"


def test_real_caddy_accepts_the_configuration(layout: LabLayout) -> None:
    caddy = caddy_binary()
    if caddy is None:
        pytest.skip("caddy is not installed and the lab's Caddy could not be built")
    binary_cache.directory(layout).mkdir(parents=True)
    caddyfile = binary_cache.directory(layout) / "Caddyfile"
    caddyfile.write_text(binary_cache.caddyfile_text(layout))
    checked = subprocess.run(
        [caddy, "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=False,
        env={"HOME": str(binary_cache.directory(layout)), "PATH": "/usr/bin:/bin"},
    )
    assert checked.returncode == 0, checked.stderr


def test_the_hosts_nix_conf_keeps_its_settings_and_gains_the_cache() -> None:
    image_conf = "sandbox = false\nsubstituters =\nexperimental-features = nix-command\n"
    written = binary_cache.with_settings(
        image_conf, {"substituters": "http://10.237.1.1:7431", "trusted-public-keys": "lab-1:AAAA"}
    )
    assert written == (
        "sandbox = false\nexperimental-features = nix-command\n"
        "substituters = http://10.237.1.1:7431\ntrusted-public-keys = lab-1:AAAA\n"
    )


def test_the_inventory_section_is_a_cache_the_inventory_reads(layout: LabLayout, tmp_path: Path) -> None:
    binary_cache.directory(layout).mkdir(parents=True)
    subprocess.run(
        [
            "nix-store",
            "--generate-binary-cache-key",
            binary_cache.key_name(layout),
            str(binary_cache.secret_key(layout)),
            str(binary_cache.public_key_file(layout)),
        ],
        check=True,
    )
    section = binary_cache.inventory_section(layout)
    assert tuple(section) == inventory.CACHE_KEYS
    assert section["public_key"].startswith("djdeploy-lab6-cache-1:")
    path = tmp_path / "inventory.yaml"
    defaults = {**control.inventory_defaults(layout, "example"), "cache": section}
    path.write_text(yaml.safe_dump({"defaults": defaults, "hosts": {"lab1": {"address": "10.237.1.2"}}}))
    cache = inventory.load(path).hosts["lab1"].cache
    assert cache is not None
    assert (cache.push, cache.substitute) == (
        f"file://{binary_cache.store(layout)}?compression=zstd",
        binary_cache.url(layout),
    )


def test_without_a_running_cache_the_inventory_has_no_cache(layout: LabLayout) -> None:
    assert "cache" not in control.inventory_defaults(layout, "example")
