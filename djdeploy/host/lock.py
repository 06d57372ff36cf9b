"""The host's deploy lock: an atomic mkdir, with an owner file that says who holds it."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host import paths as host_paths
from djdeploy.host import records
from djdeploy.host.records import DeployRecord
from djdeploy.remote.ssh import Remote, SshTarget


@dataclass(frozen=True)
class LockOwner:
    """Who holds a host's lock. Empty fields: the lock's owner file is missing or unreadable."""

    user: str = ""
    machine: str = ""
    since: str = ""
    command: str = ""
    # The token the deploy took the lock under (its activation id); it releases only a lock with its token.
    id: str = ""

    @classmethod
    def parse(cls, text: str) -> LockOwner:
        try:
            owner = json.loads(text)
        except json.JSONDecodeError:
            return cls()
        if not isinstance(owner, dict):
            return cls()
        fields = ("user", "machine", "since", "command", "id")
        return cls(**{name: str(owner.get(name, "")) for name in fields})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def describe(self) -> str:
        if not self.user:
            return "an unknown deployer (its lock has no readable owner file)"
        return f"{self.user}@{self.machine or '?'} since {self.since or '?'} ({self.command or '?'})"


class LockHeld(DjdeployError):
    pass


# Prints the owner file's first line while the lock is held ({} when it has no owner file), nothing otherwise.
OWNER_COMMAND = (
    f"[ -d {host_paths.LOCK_DIR} ] && {{ head -n 1 {host_paths.LOCK_OWNER} 2>/dev/null || echo {{}}; }}"
)

# Exit code of the lock command when another deploy holds the lock (any other failure is reported as such).
_LOCK_HELD = 75


def acquire(remote: Remote, token: str, command: str) -> None:
    """Take the host's deploy lock under token, or say who holds it."""
    owner = LockOwner(**records.who(), since=records.now(), command=command, id=token)
    parent = str(Path(host_paths.LOCK_DIR).parent)
    result = remote.run_shell(
        f"mkdir -p {parent} && {{ mkdir {host_paths.LOCK_DIR} 2>/dev/null || exit {_LOCK_HELD}; }} && "
        f"printf '%s\\n' {shlex.quote(owner.to_json())} > {host_paths.LOCK_OWNER}",
        check=False,
        privileged=True,
    )
    if result.ok:
        return
    if result.exit_code != _LOCK_HELD:
        raise DjdeployError(
            f"Could not take the deploy lock on {remote.target.display} (exit code {result.exit_code}): "
            f"{(result.stdout + result.stderr).strip() or 'no message'}. Check that the SSH user may write "
            f"{parent} (as root, or through sudo with the right password)."
        )
    raise held(remote.target, read(remote) or LockOwner())


def held(target: SshTarget, owner: LockOwner) -> LockHeld:
    """The error that says who holds a host's lock and what to do."""
    return LockHeld(
        f"{target.name} is locked by another deploy: {owner.describe()}. Wait for it to finish. "
        "If that deploy died and the lock is stale, break it on purpose with "
        f"`djdeploy unlock --host {target.name}`."
    )


def release_command(token: str | None) -> str:
    """Remove the lock; with a token, only while it is still ours (it may have been broken and retaken)."""
    if token is None:
        return f"rm -rf {host_paths.LOCK_DIR}"
    return (
        f"{{ grep -qF {shlex.quote(json.dumps(token))} {host_paths.LOCK_OWNER} 2>/dev/null "
        f"&& rm -rf {host_paths.LOCK_DIR}; true; }}"
    )


def release(remote: Remote, token: str | None = None) -> None:
    remote.run_shell(release_command(token), privileged=True)


def read(remote: Remote) -> LockOwner | None:
    """The lock's owner, or None when the host is not locked."""
    result = remote.run_shell(OWNER_COMMAND, check=False)
    if not result.ok or not result.stdout.strip():
        return None
    return LockOwner.parse(result.stdout)


def record_and_release(remote: Remote, entry: DeployRecord, token: str) -> None:
    """Append entry to the deploy log, then release the lock taken under token: one command."""
    remote.run_shell(f"{records.append_command(entry)} && {release_command(token)}", privileged=True)
