"""A project the lab has never seen, laid out as cookiecutter-django lays one out, rehearsed from its
lab.yaml alone: `djdeploy lab.rehearse` builds it from its poetry.lock and serves it over HTTPS.

Each common first-deploy failure of such a project is a variant of it, one line changed, and is one message
that says what to change; lab1 keeps serving the project as first rehearsed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from djdeploy.lab import project as lab_project
from djdeploy.lab.layout import LabLayout
from djdeploy.lab.machine import ssh_target
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import REPO, inv

PROJECT = REPO / "tests" / "lab" / "cookiecutter_project"


@pytest.fixture(scope="module")
def rehearsed(lab: LabLayout) -> LabLayout:
    """lab1 running the project, rehearsed by `inv lab.rehearse`: every variant's deploy fails back to it."""
    result = inv("lab.rehearse", "--file", str(PROJECT / "lab.yaml"))
    assert "shop runs on lab1 as https://shop.lab/" in result.stdout.replace("\n", " ")
    return lab


@pytest.fixture(autouse=True)
def wide_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # error boxes wrap no word of a path


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, its error box's borders and line breaks as spaces."""
    return " ".join((result.stdout + result.stderr).replace("│", " ").split())


def variant(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of the project with one line of one file changed; its lab.yaml."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    changed = project / file
    text = changed.read_text()
    assert old in text
    changed.write_text(text.replace(old, new))
    return project / "lab.yaml"


def deploy_variant(layout: LabLayout, lab_file: Path) -> subprocess.CompletedProcess[str]:
    """`inv deploy` of a variant to lab1 by the inventory lab.rehearse writes, with a short health check."""
    path = lab_project.write_inventory(layout, lab_project.load(lab_file), ["lab1"])
    written = yaml.safe_load(path.read_text())
    written["defaults"]["timeouts"] = {"health": 10, "confirm": 10}
    path.write_text(yaml.safe_dump(written))
    return inv("deploy", "--inventory", str(path), check=False)


def fetch(layout: LabLayout, path: str) -> tuple[str, str]:
    """Status and body of https://shop.lab<path>, asked through lab1's Caddy."""
    with Remote(ssh_target(layout, layout.host(1))) as remote:
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
def test_the_project_deploys_and_serves_home_admin_and_static_files(rehearsed: LabLayout) -> None:
    status, home = fetch(rehearsed, "/")
    assert status == "200"
    # The Vite manifest's entry, under the hashed name collectstatic gave it.
    script = home.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/static/assets/main-4f2a9c1d.")
    assert fetch(rehearsed, script) == ("200", 'document.documentElement.dataset.shop = "ready";\n')
    assert fetch(rehearsed, "/backoffice/login/")[0] == "200"
    inventory = rehearsed.state_dir / "projects" / "shop" / "inventory.yaml"
    check = inv("manage", "--inventory", str(inventory), "lab1", "check", "--deploy")
    assert "System check identified" in check.stdout + check.stderr


def test_an_unpinned_requirement_stops_the_rehearsal_before_any_host_boots(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    (project / "poetry.lock").unlink()
    (project / "requirements.txt").write_text("django==5.2.19\ngunicorn>=23\n")
    result = inv("lab.rehearse", "--file", str(project / "lab.yaml"), check=False)
    assert result.returncode != 0
    assert "'gunicorn>=23' is not pinned to one version" in said(result)


def test_a_wsgi_module_that_cannot_be_found_stops_the_rehearsal_before_any_host_boots(tmp_path: Path) -> None:
    lab_file = variant(tmp_path, "lab.yaml", "wsgi: config.wsgi", "wsgi: shop.wsgi")
    result = inv("lab.rehearse", "--file", str(lab_file), check=False)
    assert result.returncode != 0
    assert (
        f"wsgi: no module shop.wsgi: the site imports its code from {lab_file.parent}, where neither "
        "shop/wsgi.py nor shop/wsgi/__init__.py exists." in said(result)
    )
    assert "Its WSGI modules: config.wsgi." in said(result)


@pytest.mark.lab
def test_a_variable_the_settings_require_is_named_with_where_to_set_it(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(tmp_path, "lab.yaml", "  DJANGO_ADMIN_URL: backoffice/\n", "  SHOP_COLOR: blue\n")
    result = inv("lab.rehearse", "--file", str(lab_file), check=False)
    assert result.returncode != 0
    assert "needs the environment variable DJANGO_ADMIN_URL" in said(result)
    assert "extraEnv (env: in lab.yaml)" in said(result)


@pytest.mark.lab
def test_settings_that_raise_at_import_show_the_end_of_their_traceback(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(tmp_path, "config/settings/prod.py", "DEBUG = False", "DEBUG = Flase")
    result = inv("lab.rehearse", "--file", str(lab_file), check=False)
    assert result.returncode != 0
    output = said(result)
    assert 'config/settings/prod.py", line 3, in <module>' in output
    assert "NameError: name 'Flase' is not defined" in output
    assert "the settings module config.settings.prod raises an exception when it is imported" in output


@pytest.mark.lab
def test_a_file_a_collected_file_refers_to_is_named_when_collectstatic_lacks_it(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(
        tmp_path,
        "frontend/dist/assets/main-4f2a9c1d.js",
        '"ready";\n',
        '"ready";\n//# sourceMappingURL=main-4f2a9c1d.js.map\n',
    )
    result = inv("lab.rehearse", "--file", str(lab_file), check=False)
    assert result.returncode != 0
    assert "collectstatic could not find the static file 'assets/main-4f2a9c1d.js.map'" in said(result)


@pytest.mark.lab
def test_allowed_hosts_without_the_site_name_says_the_name_to_add(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(
        tmp_path,
        "config/settings/prod.py",
        "DEBUG = False",
        'DEBUG = False\nALLOWED_HOSTS = ["shop.example"]',
    )
    result = deploy_variant(rehearsed, lab_file)
    assert result.returncode != 0
    assert (
        "https://shop.lab/ answered 400, expected 200: Django refuses the name shop.lab, which its "
        "ALLOWED_HOSTS setting lacks. Add 'shop.lab' to ALLOWED_HOSTS" in said(result)
    )
    assert "rolled back to generation" in said(result)
    assert fetch(rehearsed, "/")[0] == "200"


@pytest.mark.lab
def test_csrf_trusted_origins_without_a_scheme_says_the_origin_to_write(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(
        tmp_path,
        "config/settings/prod.py",
        'CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS]',
        "CSRF_TRUSTED_ORIGINS = ALLOWED_HOSTS",
    )
    result = deploy_variant(rehearsed, lab_file)
    assert result.returncode != 0
    assert (
        "django-migrate-shop.service failed: CSRF_TRUSTED_ORIGINS in the site's settings holds 'shop.lab' "
        "without its scheme" in said(result)
    )
    assert "write 'https://shop.lab'" in said(result)
    assert fetch(rehearsed, "/")[0] == "200"


@pytest.mark.lab
def test_a_static_file_missing_from_the_manifest_is_named_from_the_request_on_the_host(
    rehearsed: LabLayout, tmp_path: Path
) -> None:
    lab_file = variant(
        tmp_path,
        "shop/templates/shop/home.html",
        '{% vite_asset "src/main.js" %}',
        '{% vite_asset "src/main.js" %}<link rel="stylesheet" href="{% static \'css/shop.css\' %}">',
    )
    result = deploy_variant(rehearsed, lab_file)
    assert result.returncode != 0
    output = said(result)
    assert (
        "https://shop.lab/ answered 500: a template asks for the static file 'css/shop.css', which is not "
        "in the manifest" in output
    )
    assert "ValueError: Missing staticfiles manifest entry for 'css/shop.css'" in output
    assert fetch(rehearsed, "/")[0] == "200"
