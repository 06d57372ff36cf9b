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
    # Another deploy switched the host before this one's rollback: its generation was left alone.
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class RecordedBackup:
    """A database dump a deploy took before it migrated."""

    site: str
    name: str
    size: int
    seconds: float


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
    # The dumps taken before the deploy migrated, one per site.
    backups: tuple[RecordedBackup, ...] = ()
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
            backups = tuple(
                RecordedBackup(str(b["site"]), str(b["name"]), int(b["size"]), float(b["seconds"]))
                for b in entry.get("backups") or ()
            )
        except (TypeError, ValueError, KeyError):
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
            backups=backups,
            finished=text("finished"),
            generation=generation,
            outcome=outcome,
            reason=text("reason"),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def fixed_json(self) -> str:
        """The fields known when the deploy starts, as a JSON object that the activation supervisor completes
        with finished, generation, outcome and reason."""
        ending = {"finished", "generation", "outcome", "reason"}
        return json.dumps({k: v for k, v in asdict(self).items() if k not in ending}, sort_keys=True)


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


# The whole log, nothing when there is none.
ALL_COMMAND = f"test ! -e {host_paths.DEPLOY_LOG} || cat {host_paths.DEPLOY_LOG}"


def every(remote: Remote) -> list[DeployRecord]:
    """Every record of the host, oldest first."""
    return _parsed(remote.run_shell(ALL_COMMAND).stdout)


def _parsed(text: str) -> list[DeployRecord]:
    found = [DeployRecord.parse(line) for line in text.splitlines()]
    return [record for record in found if record is not None]


def confirmed_healthy(records: list[DeployRecord], number: int, system: Path) -> DeployRecord | None:
    """The last record saying a deploy or rollback to this generation passed its checks, confirmed."""
    healthy = [
        record
        for record in records
        if record.generation == number
        and record.system == str(system)
        and record.outcome in (RecordOutcome.SUCCESS, RecordOutcome.NOT_BOOT_DEFAULT)
    ]
    return healthy[-1] if healthy else None


def commit_of(records: list[DeployRecord], number: int, system: Path) -> str:
    """The commit a generation was built from, as its own deploy record says ("-" when none does).

    A record of that system and generation made by a deploy comes first; any record of that system (the same
    build) after it.
    """
    of_it = [record for record in records if record.system == str(system)]
    own = [r for r in of_it if r.action is Action.DEPLOY and r.generation == number]
    chosen = (own or of_it)[-1:]
    return (chosen[0].commit or "-") if chosen else "-"
