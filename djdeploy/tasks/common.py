"""What every task that works on inventory hosts shares: finding the inventory, picking hosts, connecting."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from djdeploy import inventory
from djdeploy.errors import DjdeployError
from djdeploy.ssh import Remote

INVENTORY_ENV = "DJDEPLOY_INVENTORY"
SUDO_PASSWORD_ENV = "DJDEPLOY_SUDO_PASSWORD"
DEFAULT_INVENTORY = Path("inventory.yaml")
INVENTORY_HELP = f"inventory file (default: ${INVENTORY_ENV}, else ./{DEFAULT_INVENTORY})"
HOST_HELP = "host names from the inventory, comma-separated (default: all hosts)"
TAG_HELP = "only the hosts with this tag, e.g. --on @web"


def inventory_path(option: str | None) -> Path:
    """--inventory when given, else $DJDEPLOY_INVENTORY, else inventory.yaml in the working directory."""
    if option:
        return Path(option).expanduser()
    from_environment = os.environ.get(INVENTORY_ENV)
    if from_environment:
        return Path(from_environment).expanduser()
    return DEFAULT_INVENTORY


def load_inventory(option: str | None) -> inventory.Inventory:
    return inventory.load(inventory_path(option))


def select_hosts(inventory_option: str | None, names: str | None, tag: str | None) -> list[inventory.Host]:
    """The hosts named by --host or tagged as --on says (all hosts without either)."""
    if names and tag:
        raise DjdeployError("Give either --host or --on, not both.")
    return load_inventory(inventory_option).select(names, tag)


def one_host(inventory_option: str | None, name: str) -> inventory.Host:
    if not name or "," in name:
        raise DjdeployError(f"Name exactly one host of the inventory, not '{name}'.")
    return load_inventory(inventory_option).select(name)[0]


def sudo_password(hosts: Sequence[inventory.Host]) -> str | None:
    """The password for `ssh.sudo` hosts: $DJDEPLOY_SUDO_PASSWORD, else asked once on the terminal.

    None when no host needs sudo; empty when there is no terminal to ask on (passwordless sudo).
    """
    users = sorted({host.ssh.user for host in hosts if host.ssh.sudo})
    if not users:
        return None
    from_environment = os.environ.get(SUDO_PASSWORD_ENV)
    if from_environment is not None:
        return from_environment
    if not sys.stdin.isatty():
        return ""
    return getpass.getpass(f"sudo password of {', '.join(users)} on the hosts: ")


def connect(host: inventory.Host, sudo_password: str | None = None) -> Remote:
    """A connection to the host, opened by `with` (tests replace this to fake the SSH boundary)."""
    return Remote(host.ssh_target, sudo_password)


def remainder(argv: Sequence[str] | None = None) -> list[str]:
    """The command line's words after the first `--`, exactly as the shell passed them.

    Invoke keeps only a space-joined copy of them, which loses the boundaries between arguments.
    """
    words = list(sys.argv if argv is None else argv)
    if "--" not in words:
        return []
    return words[words.index("--") + 1 :]
