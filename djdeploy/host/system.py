"""What a host runs, its generations, the deploy lock and the deploy log: read and written over SSH."""

from __future__ import annotations

import getpass
import json
import shlex
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host import paths as host_paths
from djdeploy.remote import process
from djdeploy.remote.ssh import Remote, SshTarget


class Action(StrEnum):
    """What a deploy record (and the lock) says was done."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"


class RecordOutcome(StrEnum):
    """How a deploy or rollback ended, as its deploy record says."""

    SUCCESS = "success"
    NOT_BOOT_DEFAULT = "running, not the boot default"
    ROLLED_BACK = "rolled back"
    NOT_SWITCHED = "not switched"
    ROLLBACK_FAILED = "rollback-failed"
    FAILED = "failed"


@dataclass(frozen=True)
class DeployRecord:
    """One line of the host's deploy log: who deployed or rolled back which system, and how it ended."""

    id: str
    user: str
    machine: str
    commit: str
    started: str
    system: str
    action: Action
    finished: str = ""
    generation: int | None = None
    outcome: RecordOutcome | None = None
    reason: str = ""


@dataclass(frozen=True)
class Facts:
    """The host's running system, the system profile's current generation and who holds the deploy lock."""

    current_system: Path | None
    profile_system: Path | None
    generation: int | None
    lock_holder: dict[str, str] | None = None


@dataclass(frozen=True)
class Generation:
    number: int
    system: Path


class LockHeld(DjdeployError):
    pass


# One round trip: four lines, each empty when the link (or the lock) is absent; the lock's owner is one line
# of JSON ({} when a lock has no owner file).
_FACTS_COMMAND = (
    f'printf "%s\\n" "$(readlink -f {host_paths.CURRENT_SYSTEM} 2>/dev/null)" '
    f'"$(readlink -f {host_paths.SYSTEM_PROFILE} 2>/dev/null)" '
    f'"$(readlink {host_paths.SYSTEM_PROFILE} 2>/dev/null)" '
    f'"$([ -d {host_paths.LOCK_DIR} ] && {{ head -n 1 {host_paths.LOCK_OWNER} 2>/dev/null || echo {{}}; }})"'
)


def facts(remote: Remote) -> Facts:
    current, profile, link, lock = [*remote.run_shell(_FACTS_COMMAND).stdout.split("\n"), "", "", "", ""][:4]
    return Facts(
        current_system=Path(current) if current.startswith("/nix/store/") else None,
        profile_system=Path(profile) if profile.startswith("/nix/store/") else None,
        generation=generation_number(link),
        lock_holder=_lock_owner(lock) if lock else None,
    )


def generation_number(link: str) -> int | None:
    """system-12-link -> 12."""
    name = Path(link).name
    if name.startswith("system-") and name.endswith("-link"):
        number = name.removeprefix("system-").removesuffix("-link")
        if number.isdigit():
            return int(number)
    return None


def generations(remote: Remote) -> list[Generation]:
    """The system profile's generations, oldest first."""
    profiles = str(Path(host_paths.SYSTEM_PROFILE).parent)
    listing = remote.run_shell(
        f'for link in {profiles}/system-*-link; do [ -e "$link" ] && '
        'printf "%s %s\\n" "$link" "$(readlink -f "$link")"; done; true'
    ).stdout
    found = []
    for line in listing.splitlines():
        link, _, system = line.partition(" ")
        number = generation_number(link)
        if number is not None:
            found.append(Generation(number, Path(system)))
    return sorted(found, key=lambda generation: generation.number)


def who() -> dict[str, str]:
    """The deployer, as lock owners and deploy records name it."""
    return {"user": getpass.getuser(), "machine": socket.gethostname()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# Exit code of the lock command when another deploy holds the lock (any other failure is reported as such).
_LOCK_HELD = 75


def acquire_lock(remote: Remote, token: str, command: str) -> None:
    """Take the host's deploy lock (an atomic mkdir) under token, or say who holds it."""
    owner = json.dumps({**who(), "since": now(), "command": command, "id": token})
    parent = str(Path(host_paths.LOCK_DIR).parent)
    result = remote.run_shell(
        f"mkdir -p {parent} && {{ mkdir {host_paths.LOCK_DIR} 2>/dev/null || exit {_LOCK_HELD}; }} && "
        f"printf '%s\\n' {shlex.quote(owner)} > {host_paths.LOCK_OWNER}",
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
    raise lock_held(remote.target, read_lock(remote) or {})


def lock_held(target: SshTarget, holder: dict[str, str]) -> LockHeld:
    """The error that says who holds a host's lock and what to do."""
    return LockHeld(
        f"{target.name} is locked by another deploy: {lock_holder_text(holder)}. Wait for it to finish. "
        "If that deploy died and the lock is stale, break it on purpose with "
        f"`djdeploy unlock --host {target.name}`."
    )


def lock_holder_text(holder: dict[str, str]) -> str:
    if not holder:
        return "an unknown deployer (its lock has no readable owner file)"
    return (
        f"{holder.get('user', '?')}@{holder.get('machine', '?')} since {holder.get('since', '?')} "
        f"({holder.get('command', '?')})"
    )


def _release_lock_command(token: str | None) -> str:
    if token is None:
        return f"rm -rf {host_paths.LOCK_DIR}"
    # Only while the lock is still ours: it may have been broken and taken by another deploy.
    return (
        f"{{ grep -qF {shlex.quote(json.dumps(token))} {host_paths.LOCK_OWNER} 2>/dev/null "
        f"&& rm -rf {host_paths.LOCK_DIR}; true; }}"
    )


def release_lock(remote: Remote, token: str | None = None) -> None:
    """Remove the lock; with a token, only while it is still ours."""
    remote.run_shell(_release_lock_command(token), privileged=True)


def read_lock(remote: Remote) -> dict[str, str] | None:
    """The lock's owner, or None when the host is not locked."""
    result = remote.run(["cat", host_paths.LOCK_OWNER], check=False)
    if not result.ok:
        return None
    return _lock_owner(result.stdout)


def _lock_owner(text: str) -> dict[str, str]:
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return {str(key): str(value) for key, value in owner.items()} if isinstance(owner, dict) else {}


def record(remote: Remote, entry: DeployRecord, *, release_lock: str | None = None) -> None:
    """Append one line to the host's deploy log; then release the lock taken under that token."""
    parent = str(Path(host_paths.DEPLOY_LOG).parent)
    line = json.dumps(asdict(entry), sort_keys=True)
    command = f"mkdir -p {parent} && printf '%s\\n' {shlex.quote(line)} >> {host_paths.DEPLOY_LOG}"
    if release_lock is not None:
        command += f" && {_release_lock_command(release_lock)}"
    remote.run_shell(command, privileged=True)


def commit() -> str:
    """The deployer's git commit, marked dirty when the work tree has changes."""
    try:
        commit = process.run(["git", "rev-parse", "--short", "HEAD"], check=False, timeout=10)
        dirty = process.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, timeout=10)
    except DjdeployError:
        return "-"
    if commit.returncode != 0:
        return "-"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def recorded_commit(remote: Remote, number: int, system: Path) -> str:
    """The commit a generation was built from, as its own deploy record says ("-" when none does).

    A record of that system and generation made by a deploy comes first; any record of that system (the same
    build) after it.
    """
    result = remote.run(
        ["grep", "-F", json.dumps({"system": str(system)})[1:-1], host_paths.DEPLOY_LOG], check=False
    )
    records = [_record(line) for line in result.stdout.splitlines()]
    of_system = [record for record in records if record.get("system") == str(system)]
    own = [r for r in of_system if r.get("action") == Action.DEPLOY and r.get("generation") == number]
    chosen = (own or of_system)[-1:]
    return str(chosen[0].get("commit") or "-") if chosen else "-"


def _record(line: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}
