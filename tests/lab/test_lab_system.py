"""End to end, without the deploy task: the lab system built from the shared site definitions, switched by
hand on a real lab host, serves the example site as the NixOS module would."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from djdeploy import inventory
from djdeploy.deploy import nix
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import LAB_CA, REPO, build, inv

pytestmark = pytest.mark.lab

SYSTEMS = REPO / "tests" / "lab" / "systems.nix"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def lab1() -> Iterator[inventory.Host]:
    inv("lab.up", "--hosts", "1")
    try:
        yield inventory.load(LabLayout.from_environment().inventory).hosts["lab1"]
    finally:
        inv("lab.down")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()


@pytest.fixture(scope="module")
def release_two_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("release-two") / "example"
    shutil.copytree(REPO / "example", source, ignore=shutil.ignore_patterns("__pycache__"))
    release = source / "example_site" / "release.py"
    release.write_text(release.read_text().replace('RELEASE = "1.0.0"', 'RELEASE = "2.0.0"'))
    return source


def switch(host: inventory.Host, system: Path) -> tuple[int, str]:
    """Copy a system, make it the profile's new generation and switch to it, as nixos-rebuild does."""
    nix.copy_closure(host.ssh_target, system)
    with Remote(host.ssh_target) as remote:
        remote.run(["nix-env", "-p", "/nix/var/nix/profiles/system", "--set", str(system)])
        result = remote.run([f"{system}/bin/switch-to-configuration", "switch"], check=False, timeout=300)
        return result.exit_code, result.stdout + result.stderr


def get(
    host: inventory.Host, cafile: Path, hostname: str, path: str = "/", **kwargs: object
) -> probe.Response:
    return probe.request(host.address, hostname, path, cafile=cafile, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def first_system(lab1: inventory.Host, password_hash: str) -> Path:
    system = build(SYSTEMS, passwordHash=password_hash)
    code, output = switch(lab1, system)
    assert code == 0, output
    return system


@pytest.fixture(scope="module")
def lab_ca(lab1: inventory.Host, first_system: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Remote(lab1.ssh_target) as remote:
        pem = remote.run(["cat", LAB_CA]).stdout
    path = tmp_path_factory.mktemp("ca") / "root.crt"
    path.write_text(pem)
    return path


def test_site_answers_over_https_with_a_certificate_for_its_name(lab1: inventory.Host, lab_ca: Path) -> None:
    response = get(lab1, lab_ca, "example.lab")
    assert response.status == 200
    assert 'id="release">1.0.0<' in response.body
    assert response.certificate is not None
    assert "example.lab" in response.certificate.names
    assert "server" not in response.headers
    assert get(lab1, lab_ca, "example.lab", "/healthz").body == "ok"


def test_static_files_are_served_by_caddy_without_etag(lab1: inventory.Host, lab_ca: Path) -> None:
    page = get(lab1, lab_ca, "example.lab").body
    stylesheet = page.split('href="', 1)[1].split('"', 1)[0]
    response = get(lab1, lab_ca, "example.lab", stylesheet)
    assert response.status == 200
    assert "etag" not in response.headers
    assert "last-modified" not in response.headers


def test_migration_is_applied(lab1: inventory.Host, first_system: Path) -> None:
    with Remote(lab1.ssh_target) as remote:
        listing = remote.run(["manage-example", "showmigrations", "notes"]).stdout
    assert "[X] 0001_initial" in listing


def test_manage_check_passes_as_root_and_as_the_site_user(lab1: inventory.Host, first_system: Path) -> None:
    with Remote(lab1.ssh_target) as remote:
        assert remote.run(["manage-example", "check"]).ok
        assert remote.run(["runuser", "-u", "example", "--", "manage-example", "check"]).ok
        # Another unprivileged user may not read the site's secrets.
        denied = remote.run(["runuser", "-u", "nobody", "--", "manage-example", "check"], check=False)
        assert not denied.ok


def test_secret_key_is_private_and_outside_the_store(lab1: inventory.Host, first_system: Path) -> None:
    with Remote(lab1.ssh_target) as remote:
        mode = remote.run(["stat", "-c", "%a %U", "/var/www/example/secret_key"]).stdout.split()
        key = remote.run(["cat", "/var/www/example/secret_key"]).stdout.strip()
        found = remote.run(["grep", "-rlF", key.split('"')[1], "/nix/store"], check=False)
    assert mode == ["600", "example"]
    assert found.stdout == ""


def test_alias_redirects_permanently_to_the_hostname(lab1: inventory.Host, lab_ca: Path) -> None:
    response = get(lab1, lab_ca, "www.example.lab", "/some/page?x=1")
    assert response.status == 301
    assert response.location == "https://example.lab/some/page?x=1"


def test_basic_auth_guards_the_site(lab1: inventory.Host, lab_ca: Path) -> None:
    assert get(lab1, lab_ca, "guarded.lab").status == 401
    assert get(lab1, lab_ca, "guarded.lab", auth=("jane", "wrong")).status == 401
    assert get(lab1, lab_ca, "guarded.lab", auth=("jane", PASSWORD)).status == 200


def test_second_build_changes_the_page_and_switching_back_restores_it(
    lab1: inventory.Host, lab_ca: Path, first_system: Path, password_hash: str, release_two_source: Path
) -> None:
    second = build(SYSTEMS, passwordHash=password_hash, exampleSource=str(release_two_source))
    code, output = switch(lab1, second)
    assert code == 0, output
    assert 'id="release">2.0.0<' in get(lab1, lab_ca, "example.lab").body
    code, output = switch(lab1, first_system)
    assert code == 0, output
    assert 'id="release">1.0.0<' in get(lab1, lab_ca, "example.lab").body


def test_dry_activate_prints_what_a_switch_would_do_and_does_nothing(
    lab1: inventory.Host, lab_ca: Path, first_system: Path, password_hash: str, release_two_source: Path
) -> None:
    second = build(SYSTEMS, passwordHash=password_hash, exampleSource=str(release_two_source))
    nix.copy_closure(lab1.ssh_target, second)
    with Remote(lab1.ssh_target) as remote:
        result = remote.run([f"{second}/bin/switch-to-configuration", "dry-activate"], timeout=300)
    # NixOS's words: gunicorn and the migrations (stopIfChanged false) restart; nothing else changes.
    assert result.stderr.splitlines() == [
        "would activate the configuration...",
        "would restart the following units: django-migrate-example.service, django-migrate-guarded.service, "
        "gunicorn-example.service, gunicorn-guarded.service",
    ]
    assert 'id="release">1.0.0<' in get(lab1, lab_ca, "example.lab").body


def test_an_interrupted_switch_is_finished_by_the_next(lab1: inventory.Host, first_system: Path) -> None:
    """The lists in /run/nixos are what a switch still had to do: the next switch does it."""
    with Remote(lab1.ssh_target) as remote:
        before = remote.run(["systemctl", "show", "--value", "-p", "MainPID", "caddy.service"]).stdout
        remote.run_shell("echo caddy.service > /run/nixos/restart-list")
        result = remote.run([f"{first_system}/bin/switch-to-configuration", "test"], check=False, timeout=300)
        after = remote.run(["systemctl", "show", "--value", "-p", "MainPID", "caddy.service"]).stdout
        left = remote.run(["test", "-e", "/run/nixos/restart-list"], check=False)
    assert result.exit_code == 0, result.stderr
    assert "restarting the following units: caddy.service\n" in result.stderr
    assert after != before
    assert not left.ok


def test_removed_site_units_are_stopped(lab1: inventory.Host, lab_ca: Path, password_hash: str) -> None:
    without_guarded = build(SYSTEMS, passwordHash=password_hash, withGuardedSite="false")
    code, output = switch(lab1, without_guarded)
    assert code == 0, output
    with Remote(lab1.ssh_target) as remote:
        states = remote.run(
            ["systemctl", "is-active", "gunicorn-guarded.service", "gunicorn-guarded.socket"], check=False
        ).stdout.split()
        assert states == ["inactive", "inactive"]
        assert not remote.run(["test", "-e", "/usr/local/bin/manage-guarded"], check=False).ok
        assert remote.run(["systemctl", "is-active", "gunicorn-example.socket"]).ok
