"""End to end: a lab host boots as NixOS does, on the generation its boot default names, and the deploy's
promises hold across a reboot: before the confirmation it comes back on the previous generation, after it on
the new one, and a reboot during `nix copy` leaves the old generation serving and a redeploy working."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.deploy import nix, supervisor
from djdeploy.deploy.supervisor import State
from djdeploy.host import records
from djdeploy.host.records import Action, DeployRecord
from djdeploy.lab import machine
from djdeploy.lab.layout import LabLayout
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import SYSTEMS, build, inv, write_inventory
from tests.lab.test_deploy import deploy, lab1, page, release_source, start_deploy

pytestmark = pytest.mark.lab

# Data the example project carries in one release, so that copying that release takes a while.
BALLAST_BYTES = 128 * 1024 * 1024


def release(lab: LabLayout, workspace: Path, name: str) -> Path:
    return write_inventory(
        lab, workspace, f"release-{name}", exampleSource=str(release_source(workspace, name))
    )


def served_release(host: inventory.Host) -> str:
    found = re.search(r'id="release">([^<]*)<', page(host))
    assert found, "the example site answered without its release"
    return found.group(1)


def booted(host: inventory.Host) -> tuple[str, str]:
    """The system the host booted and the one it runs."""
    with Remote(host.ssh_target) as remote:
        return (
            remote.run(["readlink", "/run/booted-system"]).stdout.strip(),
            remote.run(["readlink", "/run/current-system"]).stdout.strip(),
        )


def test_a_host_rebooted_after_the_confirmation_runs_the_new_generation(
    lab: LabLayout, workspace: Path
) -> None:
    path = release(lab, workspace, "7.0.0")
    result = deploy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    host = lab1(path)
    with Remote(host.ssh_target) as remote:
        deployed = remote.run(["readlink", "-f", "/run/current-system"]).stdout.strip()
    rebooted = inv("lab.reboot", "lab1")
    assert "rebooted lab1" in rebooted.stdout
    assert served_release(host) == "7.0.0"
    assert booted(host) == (deployed, deployed)


def test_a_host_rebooted_before_the_confirmation_runs_the_previous_generation(
    lab: LabLayout, workspace: Path
) -> None:
    path = release(lab, workspace, "8.0.0")
    host = lab1(path)
    before = served_release(host)
    system = build(SYSTEMS, withGuardedSite="false", exampleSource=str(release_source(workspace, "8.0.0")))
    nix.copy_closure(host.ssh_target, system)
    # The supervisor switches (switch-to-configuration test) and waits for a confirmation that never comes.
    activation = supervisor.new_id()
    record = DeployRecord(activation, "test", "lab", "-", records.now(), str(system), Action.DEPLOY)
    with Remote(host.ssh_target) as remote:
        supervisor.start(remote, record, system, None, confirm_seconds=600)
        progress = supervisor.wait_for(remote, activation, {State.SWITCHED, *supervisor.FINAL_STATES}, 300)
    assert progress.state == State.SWITCHED
    assert served_release(host) == "8.0.0"
    inv("lab.reboot", "lab1")
    assert served_release(host) == before
    result = deploy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert served_release(host) == "8.0.0"


def test_a_reboot_during_the_copy_leaves_the_old_generation_and_a_redeploy_works(
    lab: LabLayout, workspace: Path
) -> None:
    source = release_source(workspace, "9.0.0")
    (source / "ballast.bin").write_bytes(os.urandom(BALLAST_BYTES))
    path = release(lab, workspace, "9.0.0")
    host = lab1(path)
    before = served_release(host)
    unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
    running = start_deploy(path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=unbuffered)
    assert running.stdout is not None
    said = []
    for line in running.stdout:
        said.append(line)
        if "take the deploy lock" in line:
            break
    # The copy starts as soon as the lock is taken.
    machine.reboot(lab, lab.host(1))
    rest, _ = running.communicate(timeout=300)
    assert running.returncode != 0, "".join(said) + rest
    assert "✗ copy the closure" in rest, "".join(said) + rest
    assert served_release(host) == before
    result = deploy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert served_release(host) == "9.0.0"
