"""Inventory validation: every error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from djdeploy.inventory import InventoryError, load

VALID = """\
defaults:
  ssh:
    user: deploy
    known_hosts: ./known_hosts
    sudo: true
  timeouts:
    activation: 900
  tags: [web]
hosts:
  prod:
    address: prod.example.com
    ssh:
      port: 2222
    build:
      flake: .#nixosConfigurations.prod
    sites: [mysite_prod]
  staging:
    address: 192.0.2.10
    tags: [web, staging]
    build:
      file: nix/lab/system.nix
      attribute: staging
      nix_options:
        max-jobs: 4
        substituters: ""
        fallback: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def test_the_migrations_before_the_switch_have_a_timeout_of_their_own(tmp_path: Path) -> None:
    text = "hosts:\n  prod:\n    address: prod.example.com\n    timeouts:\n      migrate: 1800\n"
    assert load(write(tmp_path, text)).hosts["prod"].timeouts.migrate == 1800
    with pytest.raises(InventoryError, match=r":5 hosts.prod.timeouts.migrate: expected a positive number"):
        load(write(tmp_path, text.replace("1800", "0")))


def test_hosts_inherit_defaults_and_override_them(tmp_path: Path) -> None:
    inventory = load(write(tmp_path, VALID))
    prod = inventory.hosts["prod"]
    assert (prod.ssh.user, prod.ssh.port, prod.ssh.sudo) == ("deploy", 2222, True)
    assert prod.ssh.known_hosts == tmp_path / "known_hosts"
    assert prod.timeouts.activation == 900
    assert prod.timeouts.confirm == 60
    assert prod.timeouts.migrate == 600
    assert prod.tags == ("web",)
    assert prod.build.flake == ".#nixosConfigurations.prod"
    staging = inventory.hosts["staging"]
    assert staging.ssh.port == 22
    assert staging.tags == ("web", "staging")
    assert staging.build.file == tmp_path / "nix/lab/system.nix"
    assert staging.build.nix_options == (("fallback", "true"), ("max-jobs", "4"), ("substituters", ""))
    assert prod.build.nix_options == ()


def test_hosts_are_selected_by_name_or_tag(tmp_path: Path) -> None:
    inventory = load(write(tmp_path, VALID))
    assert [h.name for h in inventory.select("staging,prod")] == ["staging", "prod"]
    assert [h.name for h in inventory.select(tag="@staging")] == ["staging"]
    assert len(inventory.select()) == 2
    with pytest.raises(InventoryError, match="no host named nope"):
        inventory.select("nope")
    with pytest.raises(InventoryError, match="tag 'db'"):
        inventory.select(tag="@db")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("port: 2222", "port: abc"),
            r"inventory.yaml:13 hosts.prod.ssh.port: expected a port number .* got 'abc'",
        ),
        (("port: 2222", "port: 70000"), r":13 hosts.prod.ssh.port: expected a port number"),
        (("    sites:", "    colour: blue\n    sites:"), r":16 hosts.prod.colour: unknown key"),
        (("  ssh:\n    user", "  sssh:\n    user"), r":2 defaults.sssh: unknown key"),
        (("sudo: true", "sudo: maybe"), r":5 defaults.ssh.sudo: expected true or false, got 'maybe'"),
        (
            ("activation: 900", "activation: -1"),
            r":7 defaults.timeouts.activation: expected a positive number",
        ),
        (("    address: prod.example.com\n", ""), r":10 hosts.prod.address: missing"),
        (("tags: [web]", "tags: web"), r":8 defaults.tags: expected a list, got 'web'"),
        (
            ("max-jobs: 4", "max-jobs: [4]"),
            r":24 hosts.staging.build.nix_options.max-jobs: expected a value, got a list",
        ),
        (
            (
                'nix_options:\n        max-jobs: 4\n        substituters: ""\n        fallback: true',
                "nix_options: fast",
            ),
            r":23 hosts.staging.build.nix_options: expected a mapping of Nix settings, got 'fast'",
        ),
        (("  prod:", "  a;touch pwned:"), r":10 hosts.a;touch pwned: expected a host name: .* got 'a;"),
        (("  staging:", "  $(id):"), r":17 hosts.\$\(id\): expected a host name"),
        (("  prod:", "  -prod:"), r":10 hosts.-prod: expected a host name"),
        (
            ("sites: [mysite_prod]", "sites: [mysite_prod, 'a;touch pwned']"),
            r":16 hosts.prod.sites\[1\]: expected a site name: letters, digits, `_` and `-`, .* got 'a;touch",
        ),
        (("sites: [mysite_prod]", "sites: ['$(id)']"), r":16 hosts.prod.sites\[0\]: expected a site name"),
        (
            ("address: prod.example.com", "address: prod example.com"),
            r":11 hosts.prod.address: expected a DNS name or an IP address, got 'prod example.com'",
        ),
        (("address: 192.0.2.10", "address: 192.0.2.10;id"), r":18 hosts.staging.address: expected a DNS"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    with pytest.raises(InventoryError, match=expected):
        load(write(tmp_path, VALID.replace(*change, 1)))


@pytest.mark.parametrize("address", ["prod.example.com", "192.0.2.10", "2001:db8::1", "localhost", "web-1."])
def test_addresses_may_be_names_or_ip_addresses(tmp_path: Path, address: str) -> None:
    inventory = load(write(tmp_path, VALID.replace("address: prod.example.com", f"address: {address}")))
    assert inventory.hosts["prod"].address == address


def test_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"Copy inventory.example.yaml"):
        load(tmp_path / "inventory.yaml")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not valid YAML"):
        load(write(tmp_path, "hosts: [\n"))


def test_example_inventory_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "inventory.example.yaml"
    assert load(example).hosts


DATABASE_SETTINGS = """\
defaults:
  backup:
    keep: 3
  rollback:
    database: restore
hosts:
  prod:
    address: prod.example.com
    migrations:
      require_safe: true
    backup:
      before_migrate: always
  staging:
    address: 192.0.2.10
"""


def test_database_settings_come_from_the_defaults_key_by_key(tmp_path: Path) -> None:
    hosts = load(write(tmp_path, DATABASE_SETTINGS)).hosts
    prod, staging = hosts["prod"], hosts["staging"]
    assert (prod.migrations.require_safe, prod.backup.keep, prod.backup.before_migrate) == (True, 3, "always")
    assert prod.rollback.database == "restore"
    assert (staging.migrations.require_safe, staging.backup.before_migrate) == (False, "auto")


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("backup:\n      keep: 0", r":5 hosts.prod.backup.keep: expected a whole number from 1, got '0'"),
        (
            "rollback:\n      database: drop",
            r":5 hosts.prod.rollback.database: expected reverse or restore or keep, got 'drop'",
        ),
        (
            "backup:\n      before_migrate: sometimes",
            r":5 hosts.prod.backup.before_migrate: expected auto or always or never, got 'sometimes'",
        ),
        ("migrations:\n      require_safe: maybe", r":5 hosts.prod.migrations.require_safe: expected true"),
    ],
)
def test_database_settings_are_checked_at_their_line(tmp_path: Path, setting: str, error: str) -> None:
    with pytest.raises(InventoryError, match=error):
        load(write(tmp_path, f"hosts:\n  prod:\n    address: prod.example.com\n    {setting}\n"))
