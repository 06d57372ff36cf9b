"""How `djdeploy status` shows the hosts: one block per host, its facts then a table of its sites.

A block reads on an 80-column terminal without cutting a cell (long values wrap, they never end in "…"),
and a wider terminal gets the host's facts on one line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from djdeploy.host.lock import LockOwner
from djdeploy.host.records import Action, DeployRecord, RecordOutcome
from djdeploy.host.system import Generation
from djdeploy.ops.scheduled import ScheduledRun
from djdeploy.ops.status import HostStatus, SiteStatus

# Certificates closer than this to their end are shown in yellow.
CERTIFICATE_WARNING_DAYS = 14
SITE_COLUMNS = ("site", "units", "http", "certificate", "migrations")
_FACT_SEPARATOR = Text(" · ", style="dim")
_INDENT = 2


@dataclass(frozen=True)
class _Heading:
    """A host's name and facts, as many to a line as fit; a fact breaks only when it is wider than a line."""

    name: Text
    facts: tuple[Text, ...]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = [self.name.copy()]
        for fact in self.facts:
            indent = _INDENT if len(lines) > 1 else 0
            if indent + lines[-1].cell_len + _FACT_SEPARATOR.cell_len + fact.cell_len <= options.max_width:
                lines[-1].append_text(_FACT_SEPARATOR).append_text(fact)
            else:
                lines.append(fact.copy())
        yield lines[0]
        # Indented below the host's name, which stays the first word of the block.
        for line in lines[1:]:
            yield _indented(line, _INDENT)


def render(statuses: Sequence[HostStatus]) -> Group:
    """Every host's block, a blank line between them."""
    blocks: list[RenderableType] = []
    for index, host in enumerate(statuses):
        if index:
            blocks.append(Text(""))
        blocks += _host_block(host)
    return Group(*blocks)


def problems(statuses: Sequence[HostStatus]) -> Text:
    """One line per host that is down, with what is down on it."""
    lines = [
        Text.assemble((f"{host.host} is down: ", "bold red"), "; ".join(host.problems))
        for host in statuses
        if not host.healthy
    ]
    return Text("\n").join(lines)


def _host_block(host: HostStatus) -> list[RenderableType]:
    name = Text(host.host, style="bold")
    if not host.reachable:
        return [_Heading(name, (Text(f"unreachable: {host.error}", style="red"),))]
    if host.error:
        return [_Heading(name, (Text(f"reachable, but: {host.error}", style="red"),))]
    heading = _Heading(
        name, (_generation(host.generation, host.running), _last_deploy(host.last_deploy), _lock(host.lock))
    )
    if not host.sites and not host.missing_sites:
        return [heading, Text("  no site", style="yellow")]
    return [heading, _indented(_sites_table(host), 1), *(_indented(line, _INDENT) for line in _details(host))]


def _indented(renderable: RenderableType, columns: int) -> Padding:
    return Padding(renderable, (0, 0, 0, columns), expand=False)


def _sites_table(host: HostStatus) -> Table:
    """Short cells, so that the table fits 80 columns; what is too long for a cell goes below it."""
    # A space of padding and the blank divider between columns: two columns of room, as in `ls`.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column in SITE_COLUMNS:
        # A cell wraps between words ("fold" rather than "…" should one word be wider than the terminal),
        # but an answer or a date with its days left reads better whole.
        table.add_column(column, overflow="fold", no_wrap=column in {"http", "certificate"})
    for site in host.sites:
        table.add_row(*_site_cells(site))
    for missing in host.missing_sites:
        table.add_row(Text(missing), Text("not in the host's system", style="red"), *_blank(3))
    return table


def _blank(count: int) -> list[Text]:
    return [Text("-") for _ in range(count)]


def _local_time(moment: datetime) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M}"


def _generation(generation: Generation | None, running: bool) -> Text:
    if generation is None:
        return Text("generation unknown", style="yellow")
    text = Text(
        f"generation {generation.number}"
        + (f" of {_local_time(generation.created)}" if generation.created else "")
    )
    if not running:
        text.append(" (not running)", style="yellow")
    return text


def _last_deploy(deploy: DeployRecord | None) -> Text:
    if deploy is None:
        return Text("no deploy recorded")
    done = "rolled back" if deploy.action is Action.ROLLBACK else "deployed"
    text = Text(f"{done} by {deploy.user}@{deploy.machine} from {_short_commit(deploy.commit or '?')}")
    if deploy.outcome is not RecordOutcome.SUCCESS:
        text.append(f" ({deploy.outcome or 'no outcome'})", style="yellow")
    return text


def _short_commit(commit: str) -> str:
    """A hash abbreviated to 10 digits; what follows it, such as "-dirty", is kept."""
    return re.sub(r"^([0-9a-f]{10})[0-9a-f]+", r"\1", commit)


def _lock(lock: LockOwner | None) -> Text:
    if lock is None:
        return Text("unlocked")
    return Text(f"locked by {lock.describe()}", style="yellow")


def _details(host: HostStatus) -> list[Text]:
    """Why a site gave no answer, and why its migrations are unknown: a line each, below the table."""
    lines = []
    for site in host.sites:
        if site.http_status is None:
            lines.append(Text(f"{site.name}: {site.url} did not answer: {site.http_error}", style="red"))
        if site.unapplied_migrations is None:
            lines.append(Text(f"{site.name}: migrations unknown: {site.migrations_error}", style="red"))
        if site.unknown_applied_migrations:
            lines.append(
                Text(
                    f"{site.name}: the database is ahead of the code: applied, unknown to the running "
                    f"release: {', '.join(site.unknown_applied_migrations)}",
                    style="yellow",
                )
            )
        lines += [_scheduled_run(site.name, run) for run in site.scheduled]
    return lines


def _scheduled_run(site: str, run: ScheduledRun) -> Text:
    """ "example: clearsessions (daily) last ran 2026-12-03 14:30, success; next 2026-12-04 00:00"."""
    text = Text(f"{site}: {run.name} ({run.on_calendar}) ")
    if run.running:
        text.append("running now", style="yellow")
    elif run.last_started is None:
        text.append("has not run since boot")
    else:
        outcome = run.result or "?"
        if run.exit_status:
            outcome += f", exit status {run.exit_status}"
        text.append(f"last ran {_local_time(run.last_started)}, ")
        text.append(outcome, style="red" if run.failed else "green")
    if run.next_run is not None:
        text.append(f"; next {_local_time(run.next_run)}")
    return text


def _site_cells(site: SiteStatus) -> list[Text]:
    units = _units(site)
    if site.http_status is None:
        http = Text("no answer", style="red")
    else:
        http = Text(str(site.http_status), style="green" if site.http_status == site.http_expected else "red")
    return [Text(site.name), units, http, _certificate(site), _migrations(site)]


def _units(site: SiteStatus) -> Text:
    """ "all active", or the others by state: "migrate failed; socket, gunicorn inactive"."""
    by_state: dict[str, list[str]] = {}
    for unit in site.units:
        if unit.state != "active":
            by_state.setdefault(unit.state, []).append(_unit_label(unit.unit, site.name))
    if not by_state:
        return Text("all active", style="green")
    return Text("; ".join(f"{', '.join(labels)} {state}" for state, labels in by_state.items()), "red")


def _unit_label(unit: str, site: str) -> str:
    """gunicorn-example.socket -> socket, django-migrate-example.service -> migrate."""
    name, _, suffix = unit.rpartition(".")
    if suffix == "socket":
        return "socket"
    return name.removesuffix(f"-{site}").removeprefix("django-")


def _certificate(site: SiteStatus) -> Text:
    if not site.tls:
        return Text("- (plain HTTP)")
    if site.certificate_expires is None:
        return Text("-")
    left = site.certificate_expires - datetime.now(UTC)
    style = (
        "red" if left.total_seconds() < 0 else "yellow" if left.days < CERTIFICATE_WARNING_DAYS else "green"
    )
    # Caddy's internal certificates last hours, not days.
    span = f"{left.days} d" if abs(left.days) >= 2 else f"{left.total_seconds() / 3600:.0f} h"
    return Text(f"{site.certificate_expires:%Y-%m-%d} ({span})", style=style)


def _migrations(site: SiteStatus) -> Text:
    if site.unapplied_migrations is None:
        return Text("unknown", style="red")
    said = []
    if site.unapplied_migrations:
        said.append(f"{len(site.unapplied_migrations)} unapplied")
    if site.unknown_applied_migrations:
        said.append(f"{len(site.unknown_applied_migrations)} ahead of the code")
    if said:
        return Text(", ".join(said), style="yellow")
    return Text("applied", style="green")
