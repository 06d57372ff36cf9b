"""End to end: the example site deployed as ASGI (gunicorn with uvicorn's workers) on the socket systemd
holds, rated and serving as the WSGI site does, and deployed back to WSGI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import inv, write_inventory

pytestmark = pytest.mark.lab

GUNICORN = "gunicorn-example.service"
MAX_EXPOSURE = 2.0


def on_lab1(lab: LabLayout, *argv: str) -> str:
    with Remote(inventory.load(lab.inventory).hosts["lab1"].ssh_target) as remote:
        return remote.run(list(argv), timeout=180).stdout


def deploy(lab: LabLayout, workspace: Path, name: str, server: str) -> None:
    inventory_path = write_inventory(lab, workspace, name, server=f'"{server}"')
    inv("deploy", "--inventory", str(inventory_path), "--host", "lab1")


def serves(lab: LabLayout) -> None:
    address = lab.host(1).address
    health = probe.request(address, "example.lab", "/healthz", verify=False)
    assert (health.status, health.body) == (200, "ok")
    assert probe.request(address, "example.lab", "/", verify=False).status == 200
    assert probe.request(address, "example.lab", "/admin/login/", verify=False).status == 200


def test_the_example_deployed_as_asgi_serves_from_uvicorn_workers(lab: LabLayout, tmp_path: Path) -> None:
    deploy(lab, tmp_path, "asgi", "gunicorn-uvicorn")
    serves(lab)
    journal = on_lab1(lab, "journalctl", "-b", "-u", GUNICORN, "--no-pager", "-o", "cat")
    assert "Using worker: uvicorn.workers.UvicornWorker" in journal
    command = on_lab1(lab, "systemctl", "show", "--value", "-p", "ExecStart", GUNICORN)
    assert "example_site.config.asgi:application" in command
    # Still systemd's socket: gunicorn was handed it rather than binding its own.
    assert on_lab1(
        lab, "systemctl", "show", "--value", "-p", "ActiveState", "gunicorn-example.socket"
    ).strip() == ("active")
    table = on_lab1(lab, "systemd-analyze", "security", "--no-pager", GUNICORN)
    found = re.search(rf"Overall exposure level for {re.escape(GUNICORN)}: (\d+\.\d+)", table)
    assert found is not None, table
    print(f"{GUNICORN} (ASGI): {found.group(1)}")
    assert float(found.group(1)) <= MAX_EXPOSURE, table


def test_the_site_goes_back_to_wsgi(lab: LabLayout, tmp_path: Path) -> None:
    deploy(lab, tmp_path, "wsgi", "gunicorn")
    serves(lab)
    command = on_lab1(lab, "systemctl", "show", "--value", "-p", "ExecStart", GUNICORN)
    assert "--worker-class gevent" in command
    assert "example_site.config.wsgi:application" in command
