"""The host's deploy log: one DeployRecord per deploy or rollback, as a JSON line."""

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
from djdeploy.remote.ssh import Remote


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

    @classmethod
    def parse(cls, line: str) -> DeployRecord | None:
        """A line of the log; None for one that is not a record (a hand edit, a cut-off write)."""
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(entry, dict):
            return None
        try:
            # Records written before actions were recorded are deploys.
            action = Action(entry.get("action") or Action.DEPLOY)
            outcome = RecordOutcome(entry["outcome"]) if entry.get("outcome") else None
            generation = int(entry["generation"]) if entry.get("generation") is not None else None
        except (TypeError, ValueError):
            return None

        def text(name: str) -> str:
            return str(entry.get(name) or "")

        return cls(
            id=text("id"),
            user=text("user"),
            machine=text("machine"),
            commit=text("commit"),
            started=text("started"),
            system=text("system"),
            action=action,
            finished=text("finished"),
            generation=generation,
            outcome=outcome,
            reason=text("reason"),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def who() -> dict[str, str]:
    """The deployer, as lock owners and deploy records name it."""
    return {"user": getpass.getuser(), "machine": socket.gethostname()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append_command(entry: DeployRecord) -> str:
    parent = str(Path(host_paths.DEPLOY_LOG).parent)
    return f"mkdir -p {parent} && printf '%s\\n' {shlex.quote(entry.to_json())} >> {host_paths.DEPLOY_LOG}"


# The log's last line, nothing when there is no log.
LAST_COMMAND = f"test ! -e {host_paths.DEPLOY_LOG} || tail -n 1 {host_paths.DEPLOY_LOG}"


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


def of_system(remote: Remote, system: Path) -> list[DeployRecord]:
    """The records of one system, oldest first."""
    result = remote.run(
        ["grep", "-F", json.dumps({"system": str(system)})[1:-1], host_paths.DEPLOY_LOG], check=False
    )
    found = [DeployRecord.parse(line) for line in result.stdout.splitlines()]
    return [record for record in found if record is not None and record.system == str(system)]


def recorded_commit(remote: Remote, number: int, system: Path) -> str:
    """The commit a generation was built from, as its own deploy record says ("-" when none does).

    A record of that system and generation made by a deploy comes first; any record of that system (the same
    build) after it.
    """
    records = of_system(remote, system)
    own = [r for r in records if r.action is Action.DEPLOY and r.generation == number]
    chosen = (own or records)[-1:]
    return (chosen[0].commit or "-") if chosen else "-"
