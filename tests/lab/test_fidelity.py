"""The lab's toplevel beside a NixOS toplevel: djdeploy may rely only on the parts both have.

A NixOS toplevel's parts are those nixpkgs makes (nixos/modules/system/activation/top-level.nix, its
systemBuilder: init, etc, sw, systemd, init-interface-version, nixos-version, system, extra-dependencies;
activatable-system.nix: bin/switch-to-configuration, activate, dry-activate; the boot loader's kernel, initrd,
kernel-params, kernel-modules, boot.json, specialisation), and under etc what the systemd module and
djdeploy's module put there (etc/systemd/system, etc/tmpfiles.d, etc/djdeploy/sites.json and
etc/djdeploy/static). On NixOS, etc is a link to the etc tree and sw to the system path; djdeploy reads
through them, so a directory in the lab is the same to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, build
from tests.lab.test_deploy import deploy, said

pytestmark = pytest.mark.lab

SYSTEMS = REPO / "tests" / "lab" / "systems.nix"
NIXOS_TOPLEVEL = frozenset(
    {
        "activate",
        "bin",
        "bin/switch-to-configuration",
        "boot.json",
        "dry-activate",
        "etc",
        "etc/djdeploy",
        "etc/djdeploy/sites.json",
        "etc/djdeploy/static",
        "etc/systemd",
        "etc/systemd/system",
        "etc/tmpfiles.d",
        "extra-dependencies",
        "init",
        "init-interface-version",
        "initrd",
        "kernel",
        "kernel-modules",
        "kernel-params",
        "nixos-version",
        "specialisation",
        "sw",
        "sw/bin",
        "system",
        "systemd",
    }
)
# Their content depends on the configuration (units, static files, commands), not on lab or NixOS.
CONFIGURATION_DIRECTORIES = ("etc/systemd/system", "etc/djdeploy/static", "sw/bin")
# What djdeploy must find in any system it deploys.
RELIED_ON_AT_LEAST = {
    "bin/switch-to-configuration",
    "etc/systemd/system",
    "etc/djdeploy/sites.json",
    "nixos-version",
    "sw/bin",
}
DJDEPLOY = REPO / "djdeploy"


def toplevel_parts(toplevel: Path) -> set[str]:
    parts = set()
    pending = [toplevel]
    while pending:
        directory = pending.pop()
        for entry in directory.iterdir():
            relative = str(entry.relative_to(toplevel))
            parts.add(relative)
            if entry.is_dir() and not entry.is_symlink() and relative not in CONFIGURATION_DIRECTORIES:
                pending.append(entry)
    return parts


def mentioned_by_djdeploy(parts: set[str]) -> set[str]:
    """The parts that djdeploy's code (but its lab) names: a path with a slash, dot or dash in it."""
    sources = [
        path.read_text()
        for path in DJDEPLOY.rglob("*")
        if path.suffix in {".py", ".sh"} and "lab" not in path.relative_to(DJDEPLOY).parts
    ]
    specific = [part for part in parts if re.search(r"[/.-]", part)]
    return {
        part
        for part in specific
        if any(re.search(rf"(?<![\w.-]){re.escape(part)}(?![\w.-])", text) for text in sources)
    }


def side_by_side(lab: set[str]) -> str:
    rows = [
        f"{part:<34} {'lab' if part in lab else '-':<5} {'NixOS' if part in NIXOS_TOPLEVEL else '-'}"
        for part in sorted(lab | NIXOS_TOPLEVEL)
    ]
    return "\n".join([f"{'part':<34} {'lab':<5} NixOS", *rows])


def test_djdeploy_relies_only_on_parts_a_nixos_toplevel_has() -> None:
    lab = toplevel_parts(build(SYSTEMS, withGuardedSite="false"))
    relied = mentioned_by_djdeploy(lab)
    table = side_by_side(lab)
    print(table)  # shown with `pytest -s`
    assert relied >= RELIED_ON_AT_LEAST, f"djdeploy no longer names {RELIED_ON_AT_LEAST - relied}?\n{table}"
    lab_only = relied - NIXOS_TOPLEVEL
    assert not lab_only, f"djdeploy relies on parts only the lab's toplevel has: {lab_only}\n{table}"
    # And the lab has every part of a NixOS toplevel that djdeploy uses.
    assert relied <= lab


def test_a_deploy_of_a_store_path_that_is_no_system_switches_nothing(lab: LabLayout, tmp_path: Path) -> None:
    host = inventory.load(lab.inventory).hosts["lab1"]
    with Remote(host.ssh_target) as remote:
        before = remote.run(["readlink", "-f", "/run/current-system"], check=False).stdout
    # A file whose value is a package, not a system's toplevel.
    expression = tmp_path / "package.nix"
    expression.write_text(f"(import {REPO}/nix/lab/packages.nix {{ }}).caddy\n")
    lab_inventory = yaml.safe_load(lab.inventory.read_text())
    lab_inventory["hosts"] = {"lab1": {"address": lab.host(1).address, "build": {"file": str(expression)}}}
    path = tmp_path / "package.yaml"
    path.write_text(yaml.safe_dump(lab_inventory))
    result = deploy(path)
    assert result.returncode == 1
    message = said(result)
    assert "which is not a NixOS system (it has no nixos-version), so nothing was copied" in message
    assert "lab1 was not switched" in message
    with Remote(host.ssh_target) as remote:
        assert remote.run(["readlink", "-f", "/run/current-system"], check=False).stdout == before
        assert not remote.run(["test", "-e", "/nix/var/nix/profiles/system"], check=False).ok
