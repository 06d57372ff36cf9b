"""A fake host for the tests of manage, status, logs and verify (over tests.fake_ssh), and a way to run tasks.

No tests here: the other test_ops_* modules import from it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from djdeploy.cli import program
from djdeploy.host.sites import MANIFEST_PATH
from djdeploy.remote.ssh import Remote, SshSettings, SshTarget
from tests import fake_ssh
from tests.fake_ssh import Answer, FakeConnection, FakeHost, FakeNetwork, ok

# An address of the documentation range: nothing ever connects to it, the fake host answers instead.
ADDRESS = "192.0.2.10"

EXAMPLE_SITE: dict[str, object] = {
    "name": "example",
    "hostname": "example.test",
    "aliases": ["www.example.test"],
    "port": 443,
    "auth": False,
    "healthCheck": {"path": "/healthz", "status": 200},
    "units": [
        "django-secret-key-example.service",
        "django-migrate-example.service",
        "gunicorn-example.socket",
        "gunicorn-example.service",
    ],
    "manageCommand": "manage-example",
    "user": "example",
    "group": "example",
    "baseDir": "/var/www/example",
    "secretKeyFile": "/var/www/example/secret_key",
    "socketPath": "/run/gunicorn-example/gunicorn.sock",
    "database": {"name": "example", "owner": "example"},
}


def site_entry(name: str, **changes: object) -> dict[str, object]:
    """EXAMPLE_SITE renamed (units, command and paths follow the name)."""
    text = json.dumps(EXAMPLE_SITE).replace("example", name)
    return {**json.loads(text), **changes}


@dataclass
class Host(FakeHost):
    """What the fake host answers: its manifest, and anything else by a function of the command line."""

    # None: the host's system has no manifest.
    sites: list[dict[str, object]] | None = field(default_factory=lambda: [EXAMPLE_SITE])
    respond: Callable[[str], Answer] = lambda command: ok()

    def answer(self, command: str) -> Answer:
        if command == f"cat {MANIFEST_PATH}":
            if self.sites is None:
                return Answer(exit_code=1)
            return ok(json.dumps(self.sites))
        return self.respond(command)


def serve(monkeypatch: pytest.MonkeyPatch, host: Host | None = None) -> FakeNetwork:
    """Make lab1 of INVENTORY (at ADDRESS) this fake host: by default one running the example site."""
    return fake_ssh.install(monkeypatch, {ADDRESS: host or Host()})


def connected(
    monkeypatch: pytest.MonkeyPatch, host: Host, *, sudo: bool = True
) -> tuple[Remote, FakeConnection]:
    """An open Remote to host at ADDRESS, logged in as `deploy` with sudo (or as root), and its connection."""
    network = fake_ssh.install(monkeypatch, {ADDRESS: host})
    settings = SshSettings(user="deploy", sudo=True) if sudo else SshSettings()
    remote = Remote(SshTarget("lab1", ADDRESS, settings)).open()
    [connection] = network.connections
    return remote, connection


INVENTORY = f"""\
hosts:
  lab1:
    address: {ADDRESS}
    ssh: {{user: deploy, sudo: true}}
    build: {{file: hosts.nix, attribute: lab1}}
  lab2:
    address: 192.0.2.11
    tags: [web]
    build: {{file: hosts.nix, attribute: lab2}}
"""


def use_inventory(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write INVENTORY and make it the tasks' default inventory."""
    path = directory / "inventory.yaml"
    path.write_text(INVENTORY)
    monkeypatch.setenv("DJDEPLOY_INVENTORY", str(path))
    return path


def run_task(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run `djdeploy ARGS` in this process, as the command line would; return its exit status."""
    argv = ["djdeploy", *args]
    # The manage task reads Django's words from the process' own arguments.
    monkeypatch.setattr(sys, "argv", argv)
    try:
        program.run(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
