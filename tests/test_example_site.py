"""Checks of the example Django project and the lab package expressions that need no lab.

The project runs with the Python running the tests and an SQLite database; the Nix checks
only parse and evaluate, they build nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example"
LAB = REPO / "nix" / "lab"
BASE_SETTINGS = "example_site.config.settings.base"
PROD_SETTINGS = "example_site.config.settings.prod"
HOSTNAME = "example.test"

# Variables the settings read, dropped from the inherited environment so that only the
# values a test sets count.
SITE_VARIABLES = frozenset(
    {
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "DJANGO_DEBUG",
        "DJANGO_SETTINGS_MODULE",
        "MEDIA_ROOT",
        "MEDIA_URL",
        "PYTHONPATH",
        "SECRET_KEY",
        "SITE_RELEASE",
        "STATIC_ROOT",
        "STATIC_URL",
    }
)

# Requests the site in a child process with Django's test client, which goes through the
# whole middleware stack, and prints what came back as JSON.
PROBE = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client()
answers = []
for request in json.loads(sys.argv[1]):
    response = client.get(request["path"], headers=request["headers"])
    answers.append({
        "status": response.status_code,
        "body": response.content.decode(),
        "location": response.get("Location"),
    })
print(json.dumps(answers))
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    location: str | None


@dataclass(frozen=True)
class Site:
    """The example project with a migrated database and collected static files."""

    environment: Mapping[str, str]
    static_root: Path

    def with_settings(self, **changes: str) -> Site:
        return Site({**self.environment, **changes}, self.static_root)

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *arguments],
            cwd=EXAMPLE,
            env=dict(self.environment),
            capture_output=True,
            text=True,
            check=False,
        )

    def django(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "django", *arguments)

    def get(self, path: str, **headers: str) -> Answer:
        [answer] = self.get_all((path, headers))
        return answer

    def get_all(self, *requests: tuple[str, Mapping[str, str]]) -> list[Answer]:
        """Answers to GET requests (path and extra headers), all made in one process."""
        probe_requests = [
            {"path": path, "headers": {"host": HOSTNAME, **headers}} for path, headers in requests
        ]
        completed = self.run("-c", PROBE, json.dumps(probe_requests))
        assert completed.returncode == 0, completed.stderr
        return [Answer(**answer) for answer in json.loads(completed.stdout)]


def site_environment(directory: Path) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name not in SITE_VARIABLES}
    environment.update(
        PYTHONPATH=str(EXAMPLE),
        # Keeps the checkout free of __pycache__ directories.
        PYTHONDONTWRITEBYTECODE="1",
        DJANGO_SETTINGS_MODULE=BASE_SETTINGS,
        SECRET_KEY=secrets.token_urlsafe(64),
        DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
        ALLOWED_HOSTS=f"{HOSTNAME}\nwww.{HOSTNAME}",
        MEDIA_ROOT=str(directory / "media"),
        STATIC_ROOT=str(directory / "static"),
    )
    return environment


def expect_success(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    pytest.importorskip("django", minversion="5.2", reason="Django 5.2 is not installed for this Python")
    directory = tmp_path_factory.mktemp("example-site")
    prepared = Site(site_environment(directory), directory / "static")
    expect_success(prepared.django("migrate", "--noinput"))
    expect_success(prepared.django("collectstatic", "--noinput"))
    return prepared


def packaged_release() -> str:
    release = runpy.run_path(str(EXAMPLE / "example_site" / "release.py"))["RELEASE"]
    assert isinstance(release, str)
    return release


def test_migrations_match_the_models(site: Site) -> None:
    expect_success(site.django("makemigrations", "--check", "--dry-run"))


def test_migrate_applies_the_notes_migration(site: Site) -> None:
    assert "[X] 0001_initial" in expect_success(site.django("showmigrations", "notes"))


def test_health_check_answers_ok(site: Site) -> None:
    assert site.get("/healthz") == Answer(200, "ok", None)


def test_health_check_fails_without_database(site: Site, tmp_path: Path) -> None:
    unreachable = site.with_settings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'missing-directory' / 'db.sqlite3'}"
    )
    assert unreachable.get("/healthz").status == 500


def test_home_page_shows_packaged_release_and_stylesheet(site: Site) -> None:
    answer = site.get("/")
    assert answer.status == 200
    assert f'<span id="release">{packaged_release()}</span>' in answer.body
    stylesheets = sorted(site.static_root.glob("example_site/site.*.css"))
    assert stylesheets, "collectstatic wrote no hashed copy of site.css"
    assert f'href="/static/example_site/{stylesheets[0].name}"' in answer.body


def test_release_variable_overrides_packaged_release(site: Site) -> None:
    answer = site.with_settings(SITE_RELEASE="2099.1").get("/")
    assert '<span id="release">2099.1</span>' in answer.body


def test_home_page_needs_no_collected_files_when_debugging(site: Site) -> None:
    development = site.with_settings(DJANGO_DEBUG="1", STATIC_ROOT="")
    answer = development.get("/")
    assert answer.status == 200
    assert 'href="/static/example_site/site.css"' in answer.body


# Writes a note through the form as a browser does (the token from the page, the cookie back), then once
# without the token; prints the statuses and the home page after.
WRITE_NOTE = """
import json, re
import django
django.setup()
from django.test import Client
client = Client(enforce_csrf_checks=True, headers={"host": "example.test"})
form = client.get("/notes/new")
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
saved = client.post("/notes/new", {"title": "written over HTTP", "csrfmiddlewaretoken": token})
forged = Client(enforce_csrf_checks=True, headers={"host": "example.test"}).post(
    "/notes/new", {"title": "forged"}
)
empty = client.post("/notes/new", {"title": "", "csrfmiddlewaretoken": token})
home = client.get("/").content.decode()
print(json.dumps([form.status_code, saved.status_code, saved["Location"], forged.status_code,
                  empty.status_code, home]))
"""


def test_a_note_is_written_through_the_form_with_its_csrf_token(site: Site) -> None:
    form, saved, location, forged, empty, home = json.loads(expect_success(site.run("-c", WRITE_NOTE)))
    assert (form, saved, location) == (200, 302, "/")
    assert forged == 403
    assert empty == 400
    assert "<li>written over HTTP</li>" in home
    assert "forged" not in home


def test_admin_asks_for_login(site: Site) -> None:
    answer = site.get("/admin/")
    assert answer.status == 302
    assert answer.location == "/admin/login/?next=/admin/"


def test_unknown_host_is_refused(site: Site) -> None:
    assert site.get("/", host="elsewhere.test").status == 400


def test_deploy_checks_pass_with_production_settings(site: Site) -> None:
    production = site.with_settings(DJANGO_SETTINGS_MODULE=PROD_SETTINGS)
    output = expect_success(production.django("check", "--deploy", "--fail-level", "WARNING"))
    assert "no issues" in output


def test_production_settings_keep_health_check_on_plain_http(site: Site) -> None:
    production = site.with_settings(DJANGO_SETTINGS_MODULE=PROD_SETTINGS)
    plain_home, plain_health, proxied_home = production.get_all(
        ("/", {}), ("/healthz", {}), ("/", {"x-forwarded-proto": "https"})
    )
    assert plain_home == Answer(301, "", f"https://{HOSTNAME}/")
    assert plain_health == Answer(200, "ok", None)
    assert proxied_home.status == 200


def test_missing_secret_key_is_reported_by_name(site: Site) -> None:
    completed = site.with_settings(SECRET_KEY="").django("check")
    assert completed.returncode != 0
    assert "SECRET_KEY must be set" in completed.stderr


def site_module(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import example_site.config.<name>, which needs Django but no settings."""
    pytest.importorskip("django", reason="Django is not installed for this Python")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module(f"example_site.config.{name}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://:memory:", {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}),
        ("sqlite:////var/db/site.sqlite3", {"NAME": "/var/db/site.sqlite3"}),
        ("sqlite:///site.sqlite3", {"NAME": "site.sqlite3"}),
        (
            "postgresql:///example",
            {"ENGINE": "django.db.backends.postgresql", "NAME": "example", "HOST": ""},
        ),
        (
            "postgres://user:p%40ss@db.example.test:6543/shop?sslmode=require",
            {
                "NAME": "shop",
                "USER": "user",
                "PASSWORD": "p@ss",
                "HOST": "db.example.test",
                "PORT": "6543",
                "OPTIONS": {"sslmode": "require"},
            },
        ),
        ("postgresql://%2Frun%2Fpostgresql/example", {"HOST": "/run/postgresql"}),
        ("postgresql://[::1]:5433/example", {"HOST": "::1", "PORT": "5433"}),
    ],
)
def test_database_url_becomes_django_database(
    url: str, expected: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = site_module("environment", monkeypatch).database_from_url(url)
    assert {key: database[key] for key in expected} == expected


def test_trusted_origins_follow_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = site_module("environment", monkeypatch)
    hosts = environment.hostnames("example.test\n  www.example.test .shop.test\n*")
    assert hosts == ["example.test", "www.example.test", ".shop.test", "*"]
    assert environment.trusted_origins(hosts) == [
        "https://example.test",
        "https://www.example.test",
        "https://*.shop.test",
    ]


def nix_instantiate(*arguments: str, cwd: Path = REPO) -> str:
    if shutil.which("nix-instantiate") is None:
        pytest.skip("nix-instantiate is not installed")
    completed = subprocess.run(
        ["nix-instantiate", "--option", "substituters", "", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.parametrize("nix_file", [LAB / "packages.nix"], ids=lambda path: path.name)
def test_nix_file_parses(nix_file: Path) -> None:
    nix_instantiate("--parse", str(nix_file))


@pytest.mark.parametrize("script", sorted((LAB / "builders").glob("*.sh")), ids=lambda path: path.name)
def test_builder_script_parses(script: Path) -> None:
    completed = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


# The lab packages as derivation paths: evaluating them builds nothing.
PACKAGE_DERIVATIONS = """
  let packages = import ./nix/lab/packages.nix { };
  in builtins.mapAttrs (_: package: package.drvPath) {
    inherit (packages.example) deps site;
    # The static files themselves are a path named by their content, which only a build gives.
    static = packages.example.collectedStatic;
    inherit (packages) caddy;
    script = packages.writeScript "hello" "echo hello";
  }
"""


def package_derivations(repo: Path) -> dict[str, str]:
    output = nix_instantiate("--eval", "--strict", "--json", "-E", PACKAGE_DERIVATIONS, cwd=repo)
    derivations = json.loads(output)
    assert isinstance(derivations, dict)
    return derivations


def test_lab_packages_evaluate() -> None:
    assert set(package_derivations(REPO)) == {"deps", "site", "static", "caddy", "script"}


def test_code_change_leaves_dependencies_alone(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.sqlite3")
    shutil.copytree(LAB, tmp_path / "nix" / "lab", ignore=ignore)
    shutil.copytree(EXAMPLE, tmp_path / "example", ignore=ignore)
    package = tmp_path / "example" / "example_site"
    original = package_derivations(tmp_path)

    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "release.cpython-311.pyc").write_bytes(b"stale")
    assert package_derivations(tmp_path) == original

    release = package / "release.py"
    release.write_text(release.read_text() + "# changed\n")
    changed = package_derivations(tmp_path)
    assert changed["site"] != original["site"]
    assert changed["deps"] == original["deps"]
    assert changed["caddy"] == original["caddy"]
