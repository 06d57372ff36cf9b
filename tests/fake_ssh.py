"""The unit tests' one SSH seam: a stand-in for Fabric's Connection inside djdeploy.remote.ssh.

Everything above it is djdeploy's own code: Remote quotes, wraps privileged commands in sudo, turns exit codes
into RemoteCommandError and dropped connections into ConnectionLost, exactly as it does against a real host.
The stand-in records each command as it would reach the host and answers it from the host of its address.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fabric
import pytest

from djdeploy.remote import ssh

# The line Remote sends to learn whether sudo wants a password (Remote._sudo_asks_password).
SUDO_PROBE = "sudo -n true"
_SUDO = ["sudo", "-S", "-p", "", "--", "sh", "-c"]


@dataclass(frozen=True)
class Answer:
    """What the host prints and exits with."""

    stdout: str = ""
    exit_code: int = 0
    stderr: str = ""


def ok(stdout: str = "") -> Answer:
    return Answer(stdout)


@dataclass(frozen=True)
class Sent:
    """One command as it went over SSH."""

    # As djdeploy wrote it, without the sudo that Remote wraps privileged commands in for sudo hosts.
    command: str
    privileged: bool
    # The input given to it, the sudo password's line first where sudo asks for one.
    input_text: str | None
    # The output is shown as it comes (not hidden); a TTY on the host; the local standard input connected.
    shown: bool
    pty: bool
    interactive: bool
    timeout: float | None


class FakeHost:
    """A host that answers every command with success and no output; subclasses answer more."""

    # Whether sudo asks this host's login user for a password.
    sudo_asks_password = False

    def answer(self, command: str) -> Answer:
        return ok()


@dataclass
class FakeConnection:
    """What djdeploy.remote.ssh uses of fabric.Connection."""

    network: FakeNetwork
    host: str
    user: str
    port: int
    sent: list[Sent] = field(default_factory=list)
    opened: bool = False
    closed: bool = False
    # Set by a test to make the next command find the connection gone.
    drop_next: bool = False

    @property
    def client(self) -> FakeConnection:
        return self

    transport = None

    def set_missing_host_key_policy(self, policy: object) -> None:
        pass

    def load_host_keys(self, path: str) -> None:
        pass

    def open(self) -> None:
        if self.host not in self.network.hosts:
            raise OSError(f"no route to {self.host}")
        self.opened = True

    def close(self) -> None:
        self.closed = True

    def run(
        self,
        command: str,
        *,
        hide: bool,
        warn: bool,
        in_stream: object,
        timeout: float | None = None,
        pty: bool = False,
        err_stream: Any = None,
    ) -> _Result:
        assert warn, "Remote reads exit codes itself"
        host = self.network.hosts[self.host]
        if self.drop_next:
            self.drop_next = False
            raise EOFError("the connection dropped")
        if command == SUDO_PROBE:
            return _Result(1 if host.sudo_asks_password else 0, "", "")
        words = shlex.split(command)
        privileged = words[: len(_SUDO)] == _SUDO
        unwrapped = words[-1] if privileged else command
        input_text = in_stream.getvalue() if hasattr(in_stream, "getvalue") else None
        self.sent.append(Sent(unwrapped, privileged, input_text, not hide, pty, in_stream is None, timeout))
        answer = host.answer(unwrapped)
        if err_stream is not None:  # Fabric writes the standard error there as it comes
            err_stream.write(answer.stderr)
        return _Result(answer.exit_code, answer.stdout, answer.stderr)

    @property
    def commands(self) -> list[str]:
        return [sent.command for sent in self.sent]


@dataclass(frozen=True)
class _Result:
    exited: int
    stdout: str
    stderr: str


@dataclass
class FakeNetwork:
    """The hosts the tests reach, by address, and every connection opened to them, in order."""

    hosts: dict[str, FakeHost] = field(default_factory=dict)
    connections: list[FakeConnection] = field(default_factory=list)
    on_connect: Callable[[FakeConnection], None] | None = None
    # Other addresses get a real connection (to loopback servers of the test), not an unreachable host.
    passthrough: bool = False

    def connection(
        self, *, host: str, user: str, port: int, connect_timeout: float, connect_kwargs: dict[str, Any]
    ) -> FakeConnection | fabric.Connection:
        if self.passthrough and host not in self.hosts:
            return fabric.Connection(
                host=host,
                user=user,
                port=port,
                connect_timeout=connect_timeout,
                connect_kwargs=connect_kwargs,
            )
        connection = FakeConnection(self, host, user, port)
        self.connections.append(connection)
        if self.on_connect is not None:
            self.on_connect(connection)
        return connection

    def to(self, address: str) -> list[FakeConnection]:
        return [connection for connection in self.connections if connection.host == address]

    def sent_to(self, address: str) -> list[Sent]:
        """Every command the host at address received, over any connection, in order."""
        return [sent for connection in self.to(address) for sent in connection.sent]


def install(
    monkeypatch: pytest.MonkeyPatch, hosts: dict[str, FakeHost], *, passthrough: bool = False
) -> FakeNetwork:
    """Make every Remote connect to these hosts, by address; any other address is unreachable."""
    network = FakeNetwork(dict(hosts), passthrough=passthrough)
    monkeypatch.setattr(ssh, "fabric_connection", network.connection)
    return network
