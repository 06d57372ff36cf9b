"""A fake of the SSH boundary for the tests of manage, status, logs and verify, and a way to run tasks.

No tests here: the other test_ops_* modules import from it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from djdeploy.cli import program
from djdeploy.host.sites import MANIFEST_PATH
from djdeploy.remote.ssh import Remote, RemoteCommandError, RemoteResult, SshTarget

# An address of the documentation range: nothing ever connects to it, the fake answers instead.
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


@dataclass(frozen=True)
class Call:
    command: str
    options: dict[str, Any]


Answer = Callable[[str], RemoteResult]


def ok(command: str, stdout: str = "", exit_code: int = 0) -> RemoteResult:
    return RemoteResult(command, exit_code, stdout, "")


@dataclass
class Host:
    """What the fake host answers: its manifest, and anything else by a function of the command line."""

    # None: the host's system has no manifest.
    sites: list[dict[str, object]] | None = field(default_factory=lambda: [EXAMPLE_SITE])
    answer: Answer = ok

    def respond(self, command: str) -> RemoteResult:
        if command == f"cat {MANIFEST_PATH}":
            if self.sites is None:
                return ok(command, exit_code=1)
            return ok(command, json.dumps(self.sites))
        return self.answer(command)


class FakeRemote(Remote):
    """A Remote that records the command lines it is given instead of sending them."""

    def __init__(self, host: Host | None = None, name: str = "lab1") -> None:
        super().__init__(SshTarget(name=name, address=ADDRESS))
        self.host = host or Host()
        self.calls: list[Call] = []

    def open(self) -> FakeRemote:
        return self

    def close(self) -> None:
        pass

    def run_shell(self, command: str, **options: Any) -> RemoteResult:
        self.calls.append(Call(command, options))
        result = self.host.respond(command)
        if options.get("check", True) and not result.ok:
            raise RemoteCommandError(self.target, result)
        return result

    @property
    def commands(self) -> list[str]:
        return [call.command for call in self.calls]


INVENTORY = f"""\
hosts:
  lab1:
    address: {ADDRESS}
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
