"""The one place that runs commands on remote hosts: Fabric connections that check host keys.

Fabric and paramiko are imported when the first connection opens (about 0.15 s of start-up): a deploy opens
its connections while its systems build, and tasks that reach no host never pay for them.
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypedDict, Unpack

from djdeploy.errors import DjdeployError

if TYPE_CHECKING:
    import paramiko
    from fabric import Connection


@dataclass(frozen=True)
class SshSettings:
    """How to log in to a host: the inventory's `ssh` section."""

    user: str = "root"
    port: int = 22
    known_hosts: Path | None = None
    identity: Path | None = None
    connect_timeout: float = 10.0
    # Privileged commands go through `sudo -S`, the password sent on its standard input.
    sudo: bool = False


@dataclass(frozen=True)
class SshTarget:
    """One host to reach over SSH: its name, its address and how to log in."""

    name: str
    address: str
    ssh: SshSettings = SshSettings()

    @property
    def display(self) -> str:
        return f"{self.name} ({self.ssh.user}@{self.address}:{self.ssh.port})"

    @property
    def known_hosts_name(self) -> str:
        """The host as a known_hosts line names it."""
        return self.address if self.ssh.port == 22 else f"[{self.address}]:{self.ssh.port}"


@dataclass(frozen=True)
class RemoteResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ConnectionLost(DjdeployError):
    """The SSH connection dropped while a command ran: whether the command ran on the host is unknown."""


class UnknownHostKeyError(DjdeployError):
    """The host offered a key that known_hosts does not list, or lists differently."""


def _reject_unknown_host_key(target: SshTarget) -> paramiko.MissingHostKeyPolicy:
    """A policy that refuses hosts whose key is not in known_hosts, and says which key they offered."""
    import paramiko

    class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
            raise UnknownHostKeyError(
                f"{target.display} offered the {key.get_name()} host key {key.fingerprint}, which "
                f"{target.ssh.known_hosts or 'known_hosts'} does not list, so the connection was refused. "
                "Check the fingerprint with the host's administrator (on the host: `ssh-keygen -lf "
                f"/etc/ssh/ssh_host_{key.get_name().removeprefix('ssh-')}_key.pub`), then add it: "
                f"`ssh-keyscan -p {target.ssh.port} {target.address} >> "
                f"{target.ssh.known_hosts or '~/.ssh/known_hosts'}`."
            )

    return RejectUnknownHostKey()


def fabric_connection(
    *, host: str, user: str, port: int, connect_timeout: float, connect_kwargs: dict[str, object]
) -> Connection:
    """A Fabric connection, not yet open (the unit tests' SSH seam, tests/fake_ssh.py, stands in for it)."""
    from fabric import Connection

    return Connection(
        host=host, user=user, port=port, connect_timeout=connect_timeout, connect_kwargs=connect_kwargs
    )


class RunOptions(TypedDict, total=False):
    """The options of Remote.run_shell, which Remote.run passes on."""

    check: bool
    input_text: str | None
    timeout: float | None
    pty: bool
    stream: bool
    interactive: bool
    privileged: bool
    on_error_line: Callable[[str], None] | None


class Remote:
    """An open SSH connection to one host, reused for every command sent to it."""

    def __init__(self, target: SshTarget, sudo_password: str | None = None) -> None:
        self.target = target
        self._sudo_password = sudo_password
        # Whether sudo asks this host for a password: learnt once per connection (see _sudo_asks_password).
        self._sudo_asks: bool | None = None
        connect_kwargs: dict[str, object] = {
            "look_for_keys": target.ssh.identity is None,
            "allow_agent": True,
        }
        if target.ssh.identity is not None:
            connect_kwargs["key_filename"] = str(target.ssh.identity)
        self._connection = fabric_connection(
            host=target.address,
            user=target.ssh.user,
            port=target.ssh.port,
            connect_timeout=target.ssh.connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        client: paramiko.SSHClient = self._connection.client
        # Fabric's default policy trusts any new key; never use it.
        client.set_missing_host_key_policy(_reject_unknown_host_key(target))
        known_hosts = target.ssh.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        if known_hosts.exists():
            client.load_host_keys(str(known_hosts))

    @property
    def sudo_password(self) -> str | None:
        return self._sudo_password

    def open(self) -> Remote:
        import paramiko

        try:
            self._connection.open()
        except UnknownHostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            known_hosts = self.target.ssh.known_hosts or "~/.ssh/known_hosts"
            raise UnknownHostKeyError(
                f"{self.target.display} offered the host key {exc.key.fingerprint}, but known_hosts "
                f"expects {exc.expected_key.fingerprint}. The host was reinstalled or someone is in between. "
                "If the change is expected, remove the old line with "
                f"`ssh-keygen -R '{self.target.known_hosts_name}' -f {known_hosts}` "
                "and add the new key."
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise DjdeployError(
                f"{self.target.display} refused our SSH key. Check the inventory's identity file and that "
                f"its public key is in ~{self.target.ssh.user}/.ssh/authorized_keys on the host."
            ) from exc
        except (OSError, paramiko.SSHException) as exc:
            raise DjdeployError(
                f"Cannot reach {self.target.display}: {exc}. Check that the host is up and that the address "
                "and port in the inventory are right."
            ) from exc
        # A host that vanishes mid-command is noticed in about a minute, not when TCP gives up.
        transport = self._connection.transport
        if transport is not None:
            transport.set_keepalive(15)
            # Each command is a few small packets: with Nagle's algorithm, every one waited ~40 ms for the
            # host's delayed acknowledgement.
            import socket

            if isinstance(transport.sock, socket.socket):
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def __enter__(self) -> Remote:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def _sudo_asks_password(self) -> bool:
        """Ask once whether sudo needs the password here: never send it where sudo would not read it."""
        if self._sudo_asks is None:
            probe = self._connection.run("sudo -n true", hide=True, warn=True, in_stream=False)
            self._sudo_asks = probe.exited != 0
        return self._sudo_asks

    def _as_root(self, command: str) -> tuple[str, str | None]:
        """command as root, through sudo where the target logs in as another user; and the password's line,
        which sudo reads from standard input before the command gets the rest (None: sudo asks for none)."""
        if not self.target.ssh.sudo:
            return command, None
        wrapped = shlex.join(["sudo", "-S", "-p", "", "--", "sh", "-c", command])
        return wrapped, f"{self._sudo_password or ''}\n" if self._sudo_asks_password() else None

    def run(self, argv: Sequence[str], **options: Unpack[RunOptions]) -> RemoteResult:
        """Run argv on the host. Each argument is quoted, so shell metacharacters in it are data."""
        return self.run_shell(shlex.join(argv), **options)

    def run_shell(
        self,
        command: str,
        *,
        check: bool = True,
        input_text: str | None = None,
        timeout: float | None = None,
        pty: bool = False,
        stream: bool = False,
        interactive: bool = False,
        privileged: bool = False,
        on_error_line: Callable[[str], None] | None = None,
    ) -> RemoteResult:
        """Run a shell command line written by djdeploy itself (never built from user input).

        stream: show the output as it comes. interactive: also connect the terminal (a TTY, stdin).
        privileged: run as root, through sudo when the target logs in as another user.
        on_error_line: hears each line of the standard error as it comes (which is still captured).
        """
        if privileged:
            command, password = self._as_root(command)
            if password is not None:
                # A terminal would echo the password back: it goes over a plain channel.
                input_text = password + (input_text or "")
                stream = stream or interactive
                pty = interactive = False
        in_stream: object = False
        if input_text is not None:
            in_stream = _WholeInput(input_text)
        elif interactive:
            in_stream = None  # Fabric reads the local standard input
        hide: bool | str = not (stream or interactive)
        watching: dict[str, object] = {}
        if on_error_line is not None:
            hide, watching = "stdout", {"err_stream": _Lines(on_error_line)}
        import paramiko
        from invoke.exceptions import CommandTimedOut

        try:
            result = self._connection.run(
                command,
                hide=hide,
                warn=True,
                in_stream=in_stream,
                timeout=timeout,
                pty=pty or interactive,
                **watching,
            )
        except CommandTimedOut as exc:
            raise DjdeployError(
                f"`{command}` on {self.target.display} did not finish within {timeout:.0f} s."
            ) from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionLost(f"Lost the SSH connection to {self.target.display}: {exc}.") from exc
        remote_result = RemoteResult(command, result.exited, result.stdout, result.stderr)
        if check and not remote_result.ok:
            raise RemoteCommandError(self.target, remote_result)
        return remote_result

    def download(
        self,
        argv: Sequence[str],
        destination: Path,
        on_bytes: Callable[[int], None],
        *,
        privileged: bool = False,
    ) -> None:
        """Write what argv prints on the host, as bytes, to destination; on_bytes(count) after each chunk.

        For output too large to hold in memory, or not text (a database dump). Fails as run does.
        """
        import paramiko

        command, password = self._as_root(shlex.join(argv)) if privileged else (shlex.join(argv), None)
        transport = self._connection.transport
        assert transport is not None, "download needs an open connection"
        errors = bytearray()
        try:
            channel = transport.open_session()
            channel.exec_command(command)
            if password is not None:
                channel.sendall(password.encode())
            channel.shutdown_write()
            with destination.open("wb") as output:
                while chunk := channel.recv(_CHUNK):
                    output.write(chunk)
                    on_bytes(len(chunk))
                    # Standard error is read along: a full buffer of it would stop the command.
                    while channel.recv_stderr_ready():
                        errors += channel.recv_stderr(_CHUNK)
            while error := channel.recv_stderr(_CHUNK):
                errors += error
            exit_code = channel.recv_exit_status()
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionLost(f"Lost the SSH connection to {self.target.display}: {exc}.") from exc
        if exit_code != 0:
            raise RemoteCommandError(
                self.target, RemoteResult(command, exit_code, "", errors.decode(errors="replace"))
            )


_CHUNK = 1 << 16


class _WholeInput(io.StringIO):
    """Input handed over at once: Invoke asks non-terminal streams for one byte per 10 ms."""

    def read(self, size: int | None = -1) -> str:
        return super().read()


class _Lines(io.TextIOBase):
    """A stream that hands each whole line written to it to on_line."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._on_line(line)
        return len(text)


# The exit code of a command whose channel closed without an exit status (as Paramiko reports it).
NO_EXIT_STATUS = -1


class RemoteCommandError(DjdeployError):
    def __init__(self, target: SshTarget, result: RemoteResult) -> None:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        if result.exit_code == NO_EXIT_STATUS:
            what = (
                f"A command on {target.display} ended without an exit status: the host closed the SSH "
                "connection under it (it restarted or lost its power), or the command was killed"
            )
        else:
            what = f"`{result.command}` failed on {target.display} with exit code {result.exit_code}"
        super().__init__(what + "." + (f"\n{tail}" if tail else ""))
        self.result = result


def port_open(address: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to address:port succeeds within timeout."""
    import socket

    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
