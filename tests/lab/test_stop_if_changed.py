"""End to end: the lab's switch-to-configuration tells stopIfChanged apart, as NixOS's does.

With gunicorn's stopIfChanged at NixOS's default (true), a deploy stops its socket with it and a steady load
of HTTPS requests sees failures; with the module's setting (false), gunicorn is restarted alone behind its
socket and not one request fails. The load is the zero-downtime benchmark's (bench/deploy.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bench.deploy import failed_requests_during
from djdeploy.lab.layout import LabLayout
from tests.lab.helpers import write_inventory
from tests.lab.test_deploy import deploy, lab1, page, release_source

pytestmark = pytest.mark.lab


def release(lab: LabLayout, workspace: Path, name: str, stop_if_changed: str) -> Path:
    """An inventory deploying release `name` with gunicorn's stopIfChanged "module" or "nixos-default"."""
    return write_inventory(
        lab,
        workspace,
        f"{name}-{stop_if_changed}",
        exampleSource=str(release_source(workspace, name)),
        gunicornStopIfChanged=f'"{stop_if_changed}"',
    )


def failures_while_deploying(inventory_path: Path) -> tuple[int, int]:
    """(failed, total) requests of the load while the inventory is deployed; the deploy must succeed."""
    outcome = {}

    def run() -> None:
        outcome["result"] = deploy(inventory_path)

    counts = failed_requests_during(lab1(inventory_path), threading.Thread(target=run))
    result = outcome["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    return counts


def test_nixos_default_stop_if_changed_refuses_connections_during_a_deploy(
    lab: LabLayout, workspace: Path
) -> None:
    first = deploy(release(lab, workspace, "5.0.0", "nixos-default"))
    assert first.returncode == 0, first.stdout + first.stderr
    changed = release(lab, workspace, "5.1.0", "nixos-default")
    failed, total = failures_while_deploying(changed)
    assert 'id="release">5.1.0<' in page(lab1(changed))
    assert total > 20
    assert failed > 0, f"no request of {total} failed although the socket was stopped"


def test_the_modules_stop_if_changed_false_refuses_none(lab: LabLayout, workspace: Path) -> None:
    # From the NixOS default to the module's setting: the new unit's flag decides, gunicorn is restarted.
    to_module = deploy(release(lab, workspace, "6.0.0", "module"))
    assert to_module.returncode == 0, to_module.stdout + to_module.stderr
    changed = release(lab, workspace, "6.1.0", "module")
    failed, total = failures_while_deploying(changed)
    assert 'id="release">6.1.0<' in page(lab1(changed))
    assert total > 20
    assert failed == 0, f"{failed} of {total} requests failed"
