"""End to end: systems built on the target, on a build host that copies them to the targets, and a system
for a platform this machine cannot build, refused before anything is built."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, inv

pytestmark = pytest.mark.lab

HOSTS = REPO / "nix" / "lab" / "hosts.nix"
PACKAGES = REPO / "nix" / "lab" / "packages.nix"


LAB_HOSTS = 3


def release(lab: LabLayout, workspace: Path, name: str, **build: str) -> Path:
    """An inventory of the lab whose hosts run a release of the example site that no store has yet, and
    build as `build` says; a system argument other than "" fakes the platform the systems need."""
    name = f"{name}-{time.time_ns()}"
    source = workspace / f"example-{name}"
    shutil.copytree(REPO / "example", source, ignore=shutil.ignore_patterns("__pycache__"))
    module = source / "example_site" / "release.py"
    module.write_text(module.read_text().replace('RELEASE = "1.0.0"', f'RELEASE = "{name}"'))
    system = build.pop("system", "")
    packages = f'import {PACKAGES} {{ system = "{system}"; }}' if system else "null"
    expression = workspace / f"{name}.nix"
    expression.write_text(
        f"let packages = {packages}; in import {HOSTS} ({{ exampleSource = {source}; }}"
        " // (if packages == null then { } else { inherit packages; }))\n"
    )
    lab_inventory = yaml.safe_load(lab.inventory.read_text())
    for host_name, host in lab_inventory["hosts"].items():
        host["build"] = {"file": str(expression), "attribute": host_name, **build}
    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(lab_inventory))
    return path


def deploy(path: Path, hosts: str, *args: str) -> subprocess.CompletedProcess[str]:
    return inv("deploy", "--inventory", str(path), "--host", hosts, *args, check=False)


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, as one line of words: the error's box wraps long lines."""
    return " ".join((result.stdout + result.stderr).replace("│", " ").split())


def system_of(path: Path, host: str) -> str:
    """The store path of the host's system in that inventory, evaluated without building it."""
    spec = inventory.load(path).hosts[host].build
    drv = subprocess.run(
        ["nix-instantiate", str(spec.file), "-A", host], capture_output=True, text=True, check=True
    ).stdout.strip()
    return subprocess.run(
        ["nix-store", "--query", "--outputs", drv], capture_output=True, text=True, check=True
    ).stdout.strip()


def here(store_path: str) -> bool:
    """Whether this machine's store holds the path."""
    return subprocess.run(["nix-store", "--check-validity", store_path], check=False).returncode == 0


def on(path: Path, host: str, *argv: str) -> str:
    with Remote(inventory.load(path).hosts[host].ssh_target) as remote:
        return remote.run(list(argv), check=False).stdout.strip()


def test_a_host_builds_its_own_system(lab: LabLayout, workspace: Path) -> None:
    path = release(lab, workspace, "on-target", on="target")
    result = deploy(path, "lab1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "build lab1 on the target" in said(result)
    assert "copy the closure" not in result.stdout  # nothing to copy: the host built it
    system = system_of(path, "lab1")
    assert on(path, "lab1", "readlink", "/run/current-system") == system
    assert not here(system)
    page = probe.request(lab.host(1).address, "example.lab", verify=False).body
    assert f'id="release">{path.stem}<' in page


def test_a_build_host_builds_for_the_others_and_copies_to_them_itself(
    lab: LabLayout, workspace: Path
) -> None:
    path = release(lab, workspace, "on-lab2")
    result = deploy(path, "lab1,lab3", "--build-on", "lab2")
    assert result.returncode == 0, result.stdout + result.stderr
    words = said(result)
    assert "build lab1, lab3 on lab2" in words
    assert "lab1 ✓ copy the closure from lab2" in words
    assert "lab3 ✓ copy the closure from lab2" in words
    for host in ("lab1", "lab3"):
        system = system_of(path, host)
        assert on(path, host, "readlink", "/run/current-system") == system
        # The build host has it, and this machine's store never did: the host got it from lab2.
        assert on(path, "lab2", "nix-store", "--check-validity", "--print-invalid", system) == ""
        assert not here(system)


def test_a_system_this_machine_cannot_build_is_refused_before_anything_is_built(
    lab: LabLayout, workspace: Path
) -> None:
    before = on(lab.inventory, "lab1", "readlink", "/nix/var/nix/profiles/system")
    path = release(lab, workspace, "aarch64", system="aarch64-linux")
    result = deploy(path, "lab1")
    assert result.returncode == 1
    words = said(result)
    assert "lab1 needs a system built for aarch64-linux, but this machine builds for x86_64-linux" in words, (
        words
    )
    assert "`build: {on: target}`" in words
    assert "remote builder for aarch64-linux" in words
    assert on(lab.inventory, "lab1", "readlink", "/nix/var/nix/profiles/system") == before


def test_a_build_host_whose_key_is_unknown_is_refused_as_a_target_is(lab: LabLayout, workspace: Path) -> None:
    path = release(lab, workspace, "unknown-builder-key")
    known_hosts = workspace / "known_hosts-without-lab2"
    lines = lab.known_hosts.read_text().splitlines()
    known_hosts.write_text("".join(f"{line}\n" for line in lines if not line.startswith(lab.host(2).address)))
    edited = yaml.safe_load(path.read_text())
    edited["hosts"]["lab2"]["ssh"] = {"known_hosts": str(known_hosts)}
    path.write_text(yaml.safe_dump(edited))
    result = deploy(path, "lab1", "--build-on", "lab2")
    assert result.returncode == 1
    assert f"lab2 (root@{lab.host(2).address}:22) offered the ssh-ed25519 host key SHA256:" in said(result)
    assert f"which {known_hosts} does not list, so the connection was refused" in said(result)
