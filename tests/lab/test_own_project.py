"""A project the lab has never seen, laid out as cookiecutter-django lays one out, rehearsed from its
lab.yaml alone: `djdeploy lab.rehearse` builds it from its poetry.lock and serves it over HTTPS."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from djdeploy.lab.layout import LabLayout
from djdeploy.lab.machine import ssh_target
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, inv

PROJECT = REPO / "tests" / "lab" / "cookiecutter_project"


def _fetch(remote: Remote, path: str) -> tuple[str, str]:
    """Status and body of https://shop.lab<path>, asked through the host's Caddy."""
    result = remote.run(
        [
            "curl",
            "-sk",
            "--resolve",
            "shop.lab:443:127.0.0.1",
            "-w",
            "\n%{http_code}",
            f"https://shop.lab{path}",
        ]
    )
    body, _, status = result.stdout.rpartition("\n")
    return status, body


@pytest.mark.lab
def test_the_project_deploys_and_serves_home_admin_and_static_files() -> None:
    layout = LabLayout.from_environment()
    try:
        result = inv("lab.rehearse", "--file", str(PROJECT / "lab.yaml"))
        assert "shop runs on lab1 as https://shop.lab/" in result.stdout.replace("\n", " ")
        with Remote(ssh_target(layout, layout.host(1))) as remote:
            status, home = _fetch(remote, "/")
            assert status == "200"
            # The Vite manifest's entry, under the hashed name collectstatic gave it.
            script = home.split('src="', 1)[1].split('"', 1)[0]
            assert script.startswith("/static/assets/main-4f2a9c1d.")
            assert _fetch(remote, script) == ("200", 'document.documentElement.dataset.shop = "ready";\n')
            assert _fetch(remote, "/backoffice/login/")[0] == "200"
        inventory = layout.state_dir / "projects" / "shop" / "inventory.yaml"
        check = inv("manage", "--inventory", str(inventory), "lab1", "check", "--deploy")
        assert "System check identified" in check.stdout + check.stderr
    finally:
        inv("lab.down")


def test_an_unpinned_requirement_stops_the_rehearsal_before_any_host_boots(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    (project / "poetry.lock").unlink()
    (project / "requirements.txt").write_text("django==5.2.19\ngunicorn>=23\n")
    result = inv("lab.rehearse", "--file", str(project / "lab.yaml"), check=False)
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "'gunicorn>=23' is not pinned to one version" in output


@pytest.mark.lab
def test_a_variable_the_settings_require_is_named_with_where_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the message on one line of the error box
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    lab_file = project / "lab.yaml"
    lab_file.write_text(
        lab_file.read_text().replace("  DJANGO_ADMIN_URL: backoffice/\n", "  SHOP_COLOR: blue\n")
    )
    try:
        result = inv("lab.rehearse", "--file", str(lab_file), check=False)
        assert result.returncode != 0
        output = " ".join((result.stdout + result.stderr).split())
        assert "needs the environment variable DJANGO_ADMIN_URL" in output
        assert "extraEnv (env: in lab.yaml)" in output
    finally:
        inv("lab.down")
