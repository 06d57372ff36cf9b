"""The last run of each scheduled management command of a host's sites, as systemd keeps it.

One `systemctl show` names, for every command's service, when it last started and how it ended, and for its
timer, when it runs next. Timestamps are asked for as `@<seconds>` (`--timestamp=unix`); the timer's next
elapse ignores that option, so it is asked for in UTC and the C locale ("Fri 2026-12-04 00:00:00 UTC").
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from djdeploy.host.sites import ScheduledCommand, Site

PROPERTIES = (
    "Id",
    "ActiveState",
    "Result",
    "ExecMainStatus",
    "ExecMainStartTimestamp",
    "NextElapseUSecRealtime",
)


@dataclass(frozen=True)
class ScheduledRun:
    """A scheduled command and what systemd says of it."""

    name: str
    command: tuple[str, ...]
    on_calendar: str
    # None: it has not run since the host booted.
    last_started: datetime | None
    # systemd's Result of the last run ("success", "exit-code", ...), and the command's exit status.
    result: str | None
    exit_status: int | None
    running: bool
    next_run: datetime | None

    @property
    def failed(self) -> bool:
        return self.last_started is not None and not self.running and self.result != "success"


def command(host_sites: Sequence[Site]) -> str | None:
    """Shell command printing the state of every scheduled command's units; None when there are none."""
    units = [unit for site in host_sites for job in site.scheduled for unit in (job.service, job.timer)]
    if not units:
        return None
    show = ["systemctl", "show", "--timestamp=unix", f"--property={','.join(PROPERTIES)}", "--", *units]
    return "TZ=UTC LC_ALL=C " + shlex.join(show)


def parse(output: str, host_sites: Sequence[Site]) -> dict[str, tuple[ScheduledRun, ...]]:
    """Each site's scheduled commands with their last and next runs, from the output of `command`."""
    states = {}
    for block in output.split("\n\n"):
        state = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if "Id" in state:
            states[state["Id"]] = state
    return {site.name: tuple(_run(job, states) for job in site.scheduled) for site in host_sites}


def _run(job: ScheduledCommand, states: dict[str, dict[str, str]]) -> ScheduledRun:
    service = states.get(job.service, {})
    started = _timestamp(service.get("ExecMainStartTimestamp", ""))
    status = service.get("ExecMainStatus", "")
    return ScheduledRun(
        name=job.name,
        command=job.command,
        on_calendar=job.on_calendar,
        last_started=started,
        result=service.get("Result") if started else None,
        exit_status=int(status) if started and status.isdigit() else None,
        running=service.get("ActiveState") in {"activating", "active", "deactivating"},
        next_run=_timestamp(states.get(job.timer, {}).get("NextElapseUSecRealtime", "")),
    )


def _timestamp(value: str) -> datetime | None:
    """`@1796306985` or `Fri 2026-12-04 00:00:00 UTC` as a time; empty (never, not planned): None."""
    text = value.strip()
    if found := re.fullmatch(r"@(\d+)", text):
        return datetime.fromtimestamp(int(found.group(1)), UTC)
    if found := re.fullmatch(r"\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", text):
        return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return None
