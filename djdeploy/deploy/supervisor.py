"""Switching a host to a system under a supervisor that runs on the host and rolls back by itself.

The supervisor runs in a transient systemd unit (systemd-run), so a dropped SSH connection cannot kill the
activation. After switching it waits for the deployer's confirmation, sent over a new SSH connection once the
health check passed; without it (a failed check, a host cut off, a deployer gone) it switches back to the
previous generation. Its progress is a state file the deployer polls.
"""

from __future__ import annotations

import math
import shlex
import time
import uuid
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path

from djdeploy.host import paths as host_paths
from djdeploy.host.records import DeployRecord
from djdeploy.remote.ssh import Remote

# The supervisor's script (its arguments and states are described at its top); it runs under /bin/sh.
SUPERVISOR = resources.files("djdeploy.deploy").joinpath("supervisor.sh").read_text()

# NixOS keeps its tools in the system path; other hosts (the lab's Debian) in /usr/bin.
SUPERVISOR_PATH = (
    "/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:/usr/local/sbin:/usr/local/bin:"
    "/usr/sbin:/usr/bin:/sbin:/bin"
)


class State(StrEnum):
    """The supervisor's states, as supervisor.sh writes them to its state file."""

    ACTIVATING = "activating"
    SWITCHED = "switched"
    CONFIRMED = "confirmed"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    FAILED = "failed"
    NOT_SWITCHED = "not-switched"
    SUPERSEDED = "superseded"


FINAL_STATES = frozenset(
    {
        State.CONFIRMED,
        State.ROLLED_BACK,
        State.ROLLBACK_FAILED,
        State.FAILED,
        State.NOT_SWITCHED,
        State.SUPERSEDED,
    }
)


def _state(word: str) -> State | None:
    """The state a state file holds; None before the supervisor wrote one."""
    try:
        return State(word)
    except ValueError:
        return None


@dataclass(frozen=True)
class Progress:
    """Where the supervisor is: its state, the generation it made current, the one a failure returns to."""

    state: State | None
    generation: int | None
    previous: int | None
    # Exit status of `switch-to-configuration boot`, once confirmed.
    boot_status: int | None = None
    # The wait ended before the supervisor reached a wanted state (state is its last one).
    timed_out: bool = False


@dataclass(frozen=True)
class ActivationResult:
    """How an activation ended (or where it is), why, and the end of its log."""

    state: State | None
    reason: str
    log: str


@dataclass(frozen=True)
class UnitError:
    """A unit that failed in an activation (in the switch or by the health check), and its journal's end."""

    unit: str
    journal: str


def new_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def unit_name(activation_id: str) -> str:
    return f"djdeploy-activate-{activation_id}"


def start_command(
    activation_id: str, system: Path, existing_generation: int | None, confirm_seconds: int
) -> list[str]:
    """The command that starts the supervisor on the host and returns at once.

    existing_generation: switch the profile to this generation (a rollback) instead of making a new one.
    """
    return [
        "systemd-run",
        f"--unit={unit_name(activation_id)}",
        "--description=djdeploy activation",
        "--collect",
        "--no-ask-password",
        "--quiet",
        "--service-type=exec",
        f"--setenv=PATH={SUPERVISOR_PATH}",
        "/bin/sh",
        "-c",
        SUPERVISOR,
        "djdeploy-activate",
        directory(activation_id),
        host_paths.SYSTEM_PROFILE,
        str(system),
        str(existing_generation) if existing_generation is not None else "new",
        str(confirm_seconds),
        host_paths.DEPLOY_LOG,
        host_paths.LOCK_DIR,
        host_paths.SWITCH_LOCK,
    ]


def directory(activation_id: str) -> str:
    return f"{host_paths.ACTIVATION_DIR}/{activation_id}"


def started(remote: Remote, activation_id: str) -> bool:
    """Whether the activation was ever started on the host (since its last boot: the folder is in /run)."""
    return remote.run_shell(f"test -d {directory(activation_id)}", check=False).ok


def start(
    remote: Remote,
    record: DeployRecord,
    system: Path,
    existing_generation: int | None,
    confirm_seconds: int,
    *,
    files: Mapping[str, str] | None = None,
) -> None:
    """Start the supervisor of activation record.id, with the record's fixed fields for its log line.

    files: more files for the activation's directory, by name (what a rollback does to the databases).
    """
    folder = directory(record.id)
    command = shlex.join(start_command(record.id, system, existing_generation, confirm_seconds))
    more = "".join(
        f"printf '%s' {shlex.quote(text)} > {folder}/{name} && " for name, text in (files or {}).items()
    )
    remote.run_shell(
        f"mkdir -p {folder} && printf '%s\\n' {shlex.quote(record.fixed_json())} > {folder}/record.json && "
        f"{more}{command}",
        privileged=True,
    )


@dataclass(frozen=True)
class Running:
    """A supervisor still running on the host: its state and, once switched, when it rolls back."""

    activation_id: str
    state: State | None
    deadline: datetime | None

    def describe(self) -> str:
        if self.deadline is None:
            return f"activation {self.activation_id} is still switching the host (state '{self.state or ''}')"
        return (
            f"activation {self.activation_id} is still running (state '{self.state or ''}'): without a "
            f"confirmation it rolls back by itself at {self.deadline:%H:%M:%S} UTC"
        )


def running(remote: Remote, activation_id: str) -> Running | None:
    """The supervisor of an activation while its unit runs; None once it has ended (or never started)."""
    folder = directory(activation_id)
    result = remote.run_shell(
        f"systemctl is-active --quiet {unit_name(activation_id)}.service || exit 0; echo running; "
        f'printf "%s\\n" "$(cat {folder}/state 2>/dev/null)" "$(cat {folder}/deadline 2>/dev/null)"',
        privileged=True,
    ).stdout.split("\n")
    if result[0] != "running":
        return None
    state, deadline = [*result[1:], "", ""][:2]
    when = datetime.fromtimestamp(int(deadline), UTC) if deadline.strip().isdigit() else None
    return Running(activation_id, _state(state.strip()), when)


def wait_for(remote: Remote, activation_id: str, states: Set[State], timeout: float) -> Progress:
    """Wait on the host, in one command, until the supervisor reaches one of states."""
    folder = directory(activation_id)
    wanted = " ".join(sorted(states))
    # Sleeps on the supervisor's lock for the phase it is in, so it wakes as soon as the phase ends; polls
    # where flock is missing or the supervisor has not taken the lock yet. Bounded by the clock.
    lock = f"{folder}/{'switching' if State.SWITCHED in states else 'deciding'}"
    script = (
        f"deadline=$(( $(date +%s) + {math.ceil(timeout)} )); late=; "
        f"reached() {{ s=; [ -f {folder}/state ] && read -r s < {folder}/state; "
        f'for w in {wanted}; do [ "$s" = "$w" ] && return 0; done; return 1; }}; '
        "while ! reached; do "
        '[ "$(date +%s)" -ge "$deadline" ] && { late=timed-out; break; }; '
        f"flock -s -w 1 {lock} true 2>/dev/null; reached && break; sleep 0.05; done; "
        # One value a line: an empty one (a file not written yet) must not shift the others.
        'printf "%s\\n" "$s"'
        + "".join(f' "$(cat {folder}/{name} 2>/dev/null)"' for name in ("generation", "previous", "boot.rc"))
        + ' "$late"'
    )
    lines = remote.run_shell(script, timeout=timeout + 30, privileged=True).stdout.split("\n")
    state, generation, previous, boot_status, late = [
        line.strip() for line in [*lines, "", "", "", "", ""][:5]
    ]
    return Progress(
        _state(state), _number(generation), _number(previous), _number(boot_status), timed_out=bool(late)
    )


def _number(word: str) -> int | None:
    return int(word) if word.isdigit() else None


def confirm(remote: Remote, activation_id: str, then: str = "") -> None:
    """Confirm the activation; then: a shell command the host runs after it, in the background (the
    confirmation neither waits for it nor fails with it)."""
    confirmed = shlex.join(["touch", f"{directory(activation_id)}/confirmed"])
    remote.run_shell(
        f"{confirmed} || exit; {{ {then}\n}} </dev/null >/dev/null 2>&1 &" if then else confirmed,
        privileged=True,
    )


def reject(remote: Remote, activation_id: str, reason: str, units: Sequence[str] = ()) -> None:
    """Make the supervisor roll back, for reason.

    units: those of them that are not active are recorded first, with the invocation that failed (the
    rollback starts them again), so that unit_errors shows their own journal.
    """
    folder = directory(activation_id)
    record = (
        f"for unit in {shlex.join(units)}; do "
        '[ "$(systemctl is-active "$unit")" = active ] && continue; '
        # A socket whose service failed too often: the service's journal says why.
        '[ "$(systemctl show --property=Result --value "$unit")" = service-start-limit-hit ] && continue; '
        'printf "%s %s\\n" "$unit" "$(systemctl show --property=InvocationID --value "$unit")"; '
        f"done > {folder}/failed-units; "
        if units
        else ""
    )
    # Whole or not at all: the supervisor reads the reason as soon as the file exists.
    remote.run_shell(
        f"{record}cat > {folder}/rejected.new && mv -f {folder}/rejected.new {folder}/rejected",
        input_text=reason,
        privileged=True,
    )


def result(remote: Remote, activation_id: str) -> ActivationResult:
    """The final state, the reason of a rollback and the end of the activation's log."""
    folder = directory(activation_id)
    result = remote.run_shell(
        f"cat {folder}/state 2>/dev/null; echo '---'; cat {folder}/reason 2>/dev/null; echo '---'; "
        f"tail -n 25 {folder}/switch.log 2>/dev/null; tail -n 25 {folder}/rollback.log 2>/dev/null; true",
        privileged=True,
    ).stdout
    state, reason, log = ([*result.split("---\n", 2), "", ""])[:3]
    return ActivationResult(_state(state.strip()), reason.strip(), log.rstrip())


# Each failed unit's own output and systemd's messages about its run, matched by invocation id (the run that
# failed, not the one a rollback started), from the second the activation began.
_UNIT_MARK = "@@djdeploy-unit"
JOURNAL_LINES = 20


def unit_errors(remote: Remote, activation_id: str) -> tuple[UnitError, ...]:
    """The units recorded as failed in this activation, each with the end of its journal from it."""
    folder = directory(activation_id)
    # The last lines through tail: journalctl's --lines, with --since and two matches, gave the first ones.
    journalctl = 'journalctl --no-pager --output=cat --since="@$since"'
    script = (
        f"[ -s {folder}/failed-units ] || exit 0; since=$(cat {folder}/started); "
        f'while read -r unit invocation; do echo "{_UNIT_MARK} $unit"; '
        f'if [ -n "$invocation" ]; then {journalctl} "_SYSTEMD_INVOCATION_ID=$invocation" + '
        f'"INVOCATION_ID=$invocation"; else {journalctl} --unit="$unit"; fi | tail -n {JOURNAL_LINES}; '
        f"done < {folder}/failed-units"
    )
    sections = remote.run_shell(script, privileged=True).stdout.split(f"{_UNIT_MARK} ")[1:]
    return tuple(
        UnitError(unit.strip(), journal.rstrip())
        for unit, _, journal in (section.partition("\n") for section in sections)
    )
