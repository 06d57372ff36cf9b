"""A project on current Django, which needs a newer Python than Debian 12's, rehearsed on the lab: its
requires-python puts its hosts on the Debian 13 image, whose Python 3.13 builds and serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
