"""A project on current Django, which needs a newer Python than Debian 12's, rehearsed on the lab: its
requires-python puts its hosts on the Debian 13 image, whose Python 3.13 builds and serves it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from djdeploy.lab import project as lab_project
from djdeploy.lab.layout import LabLayout
from djdeploy.lab.machine import ssh_target
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, inv

PROJECT = REPO / "tests" / "lab" / "python313_project"


def _fetch(remote: Remote, path: str) -> str:
    result = remote.run(["curl", "-sfk", "--resolve", "clock.lab:443:127.0.0.1", f"https://clock.lab{path}"])
    return result.stdout


@pytest.mark.lab
def test_a_project_that_needs_python_3_13_is_built_and_served_by_it() -> None:
    layout = LabLayout.from_environment()
    try:
        result = inv("lab.rehearse", "--file", str(PROJECT / "lab.yaml"))
        assert "clock runs on lab1 as https://clock.lab/" in result.stdout.replace("\n", " ")
        with Remote(ssh_target(layout, layout.host(1))) as remote:
            assert _fetch(remote, "/").startswith("Python 3.13.")
            assert "Django 6.0.10" in _fetch(remote, "/")
            assert _fetch(remote, "/static/clock/clock.css") == "body { font-family: monospace; }\n"
            release = remote.run(["sh", "-c", ". /etc/os-release && echo $VERSION_ID"]).stdout
            assert release.strip() == "13"
    finally:
        inv("lab.down")


def test_a_python_the_lab_cannot_provide_is_named_with_those_it_offers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the message on one line of the error box
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    (project / ".python-version").write_text("3.12\n")
    result = inv("lab.rehearse", "--file", str(project / "lab.yaml"), check=False)
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "asks for Python 3.12" in output
    assert "offer only Python 3.11 (Debian 12), 3.13 (Debian 13)" in output


def _failed_build(tmp_path: Path, name: str, worker_class: str, requirements: str) -> str:
    """The error of building lab1's system for a copy of the project with that worker class and pins."""
    project = tmp_path / name
    shutil.copytree(PROJECT, project)
    lab_file = project / "lab.yaml"
    lab_file.write_text(
        lab_file.read_text()
        .replace("name: clock", f"name: {name}")
        .replace("worker_class: sync", f"worker_class: {worker_class}")
    )
    (project / "requirements.txt").write_text(requirements)
    inventory = lab_project.write_inventory(
        LabLayout.from_environment(), lab_project.load(lab_file), ["lab1"]
    )
    result = subprocess.run(
        ["nix-build", "hosts.nix", "--no-out-link", "--option", "substituters", "", "-A", "lab1"],
        cwd=inventory.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0
    return " ".join(result.stderr.split())


@pytest.mark.lab
def test_the_worker_class_package_is_asked_for_with_the_line_to_add(tmp_path: Path) -> None:
    pins = (PROJECT / "requirements.txt").read_text()
    error = _failed_build(tmp_path, "clock-gevent", "gevent", pins)
    assert "worker_class gevent needs gevent, which the site's dependencies lack" in error
    assert "add the line `gevent==26.9.0`" in error


@pytest.mark.lab
def test_a_database_driver_is_asked_for_with_the_line_to_add(tmp_path: Path) -> None:
    pins = "".join(
        line + "\n"
        for line in (PROJECT / "requirements.txt").read_text().splitlines()
        if not line.startswith("psycopg")
    )
    error = _failed_build(tmp_path, "clock-nodriver", "sync", pins)
    assert "The PostgreSQL database needs psycopg, which the site's dependencies lack" in error
    assert "add the line `psycopg[binary]==3.3.9`" in error


@pytest.mark.lab
def test_a_pin_without_a_wheel_for_the_hosts_python_is_named(tmp_path: Path) -> None:
    # psycopg2-binary 2.9.9 came out before Python 3.13 and has wheels up to 3.12 only.
    pins = "django==6.0.10\nasgiref==3.13.0\nsqlparse==0.6.1\ngunicorn==27.0.1\npsycopg2-binary==2.9.9\n"
    error = _failed_build(tmp_path, "clock-old-driver", "sync", pins)
    assert "no wheel of psycopg2-binary==2.9.9 for the hosts' Python 3.13" in error
