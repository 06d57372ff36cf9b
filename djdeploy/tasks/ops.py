"""Day-two tasks: manage, status, logs and verify."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.table import Table
from rich.text import Text

from djdeploy import logs as journal
from djdeploy import manage as management
from djdeploy import sites
from djdeploy import status as host_status
from djdeploy import verify as checks
from djdeploy.console import console, error_console, reports_errors
from djdeploy.tasks.common import (
    HOST_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    connect,
    one_host,
    remainder,
    select_hosts,
    sudo_password,
)

SITE_HELP = "the site, when the host runs several (default: its only site)"
# Certificates closer than this to their end are shown in yellow.
CERTIFICATE_WARNING_DAYS = 14


@task(
    positional=["host", "command"],
    help={
        "host": "the inventory host to run the command on",
        "command": "the management command, e.g. migrate; its arguments go after `--`",
        "site": SITE_HELP,
        "inventory": INVENTORY_HELP,
    },
)
@reports_errors
def manage(
    context: Context, host: str, command: str, site: str | None = None, inventory: str | None = None
) -> None:
    """Run a Django management command of a site, as the site's user: inv manage HOST COMMAND [-- ARGS...]

    Examples: `inv manage prod migrate`, `inv manage prod createsuperuser`, `inv manage prod shell`,
    `inv manage prod showmigrations -- --plan`, `inv manage prod shell -- -c 'print(1)'`.
    The words after `--` go to Django exactly as typed, flags included (djdeploy's own options, such as
    --site, go before it). From a terminal the command gets one (for shell and createsuperuser). The task
    exits with the command's exit status.
    """
    target = one_host(inventory, host)
    arguments = [command, *remainder()]
    terminal = sys.stdin.isatty()
    # On a terminal the manage command asks for sudo's password itself, when it needs it.
    password = None if terminal else sudo_password([target])
    with connect(target, password) as remote:
        chosen = sites.pick(sites.of_inventory(sites.read(remote), target.sites), site, target.name)
        code = management.run(remote, chosen, arguments, terminal=terminal)
    if code:
        raise Exit(code=code)


@task(
    help={
        "host": HOST_HELP,
        "on": TAG_HELP,
        "inventory": INVENTORY_HELP,
        "json": "print the status as JSON, for scripts",
        "timeout": f"seconds a connected host has to answer (default {host_status.QUERY_TIMEOUT:.0f})",
    }
)
@reports_errors
def status(
    context: Context,
    host: str | None = None,
    on: str | None = None,
    inventory: str | None = None,
    json: bool = False,
    timeout: float = host_status.QUERY_TIMEOUT,
) -> None:
    """Show each host's generation, last deploy, lock and sites (units, HTTP, certificate, migrations).

    Hosts are queried in parallel; one that cannot be reached is a row that says why.
    """
    hosts = select_hosts(inventory, host, on)
    statuses = host_status.query(hosts, timeout=timeout, sudo_password=sudo_password(hosts))
    if json:
        print(host_status.to_json(statuses))
    else:
        console.print(_status_table(statuses))


@task(
    positional=["host"],
    help={
        "host": "the inventory host whose journal to show",
        "site": "only this site's units (default: every site of the host)",
        "follow": "keep showing new entries until interrupted",
        "since": "entries since then: a span such as 30min, 1h, 2d, or a time such as '2025-01-31 12:00'",
        "lines": "without --since: how many of the latest entries to show (default 100)",
        "inventory": INVENTORY_HELP,
    },
)
@reports_errors
def logs(
    context: Context,
    host: str,
    site: str | None = None,
    follow: bool = False,
    since: str | None = None,
    lines: int = 100,
    inventory: str | None = None,
) -> None:
    """Show the journal of a host's sites and of Caddy: inv logs HOST [--site x] [--follow] [--since 1h]"""
    target = one_host(inventory, host)
    with connect(target, sudo_password([target])) as remote:
        host_sites = sites.of_inventory(sites.read(remote), target.sites)
        chosen = [sites.pick(host_sites, site, target.name)] if site else host_sites
        code = journal.show(remote, chosen, follow=follow, since=since, lines=lines)
    if code:
        raise Exit(code=code)


@task(help={"host": HOST_HELP, "on": TAG_HELP, "inventory": INVENTORY_HELP})
@reports_errors
def verify(
    context: Context, host: str | None = None, on: str | None = None, inventory: str | None = None
) -> None:
    """Check deployed hosts (Caddy, gunicorn, PostgreSQL, manage command, secret key), each check by name."""
    hosts = select_hosts(inventory, host, on)
    password = sudo_password(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        reports = list(pool.map(lambda target: checks.verify(target, password), hosts))
    failed = []
    for target, results in zip(hosts, reports, strict=True):
        console.print(_checks_table(target.name, results))
        failed += [
            f"{target.name}: {result.check} {result.site}".rstrip() for result in results if not result.passed
        ]
    if failed:
        error_console.print(f"[red]{len(failed)} check(s) failed:[/] {', '.join(failed)}")
        raise Exit(code=1)


def _checks_table(host: str, results: list[checks.CheckResult]) -> Table:
    table = Table("check", "site", "result", "detail", title=host, title_justify="left")
    for result in results:
        verdict = Text("pass", style="green") if result.passed else Text("FAIL", style="bold red")
        table.add_row(result.check, result.site or "-", verdict, Text(result.detail))
    return table


STATUS_COLUMNS = ("host", "reachable", "generation", "last deploy", "lock")
SITE_COLUMNS = ("site", "units", "http", "certificate", "migrations")


def _status_table(statuses: list[host_status.HostStatus]) -> Table:
    """One row per site; the host's own columns only on its first row."""
    table = Table(*STATUS_COLUMNS, *SITE_COLUMNS)
    for host in statuses:
        if not host.reachable or host.error:
            reason = f"no: {host.error}" if not host.reachable else f"yes, but: {host.error}"
            table.add_row(
                host.host, Text(reason, style="red"), *_blank(len(STATUS_COLUMNS) + len(SITE_COLUMNS) - 2)
            )
            continue
        host_cells = [
            Text(host.host),
            Text("yes", style="green"),
            _generation(host.generation),
            _last_deploy(host.last_deploy),
            _lock(host.lock),
        ]
        rows = [_site_cells(site) for site in host.sites]
        rows += [
            [Text(f"{name}: not in the host's system", style="red"), *_blank(4)]
            for name in host.missing_sites
        ]
        for index, cells in enumerate(rows or [[Text("no site", style="yellow"), *_blank(4)]]):
            table.add_row(*(host_cells if index == 0 else [Text("")] * len(host_cells)), *cells)
    return table


def _blank(count: int) -> list[Text]:
    return [Text("-") for _ in range(count)]


def _local_time(moment: datetime) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M}"


def _generation(generation: host_status.Generation | None) -> Text:
    if generation is None:
        return Text("-")
    number = "?" if generation.number is None else str(generation.number)
    text = Text(number + (f" · {_local_time(generation.created)}" if generation.created else ""))
    if not generation.running:
        text.append(" (not running)", style="yellow")
    return text


def _last_deploy(deploy: host_status.LastDeploy | None) -> Text:
    if deploy is None:
        return Text("-")
    text = Text(f"{deploy.user}@{deploy.machine} from {deploy.commit[:10]}")
    if deploy.outcome != "success":
        text.append(f" ({deploy.outcome})", style="yellow")
    return text


def _lock(lock: host_status.Lock | None) -> Text:
    if lock is None:
        return Text("-")
    return Text(f"{lock.user}@{lock.machine} since {lock.since}", style="yellow")


def _site_cells(site: host_status.SiteStatus) -> list[Text]:
    inactive = [unit for unit in site.units if unit.state != "active"]
    if inactive:
        units = Text(
            ", ".join(f"{_unit_label(unit.unit, site.name)} {unit.state}" for unit in inactive), "red"
        )
    else:
        units = Text("all active", style="green")
    if site.http_status is None:
        http = Text(site.http_error or "-", style="red")
    else:
        http = Text(str(site.http_status), style="green" if site.http_status == site.http_expected else "red")
    return [Text(site.name), units, http, _certificate(site), _migrations(site)]


def _unit_label(unit: str, site: str) -> str:
    """gunicorn-example.socket -> socket, django-migrate-example.service -> migrate."""
    name, _, suffix = unit.rpartition(".")
    if suffix == "socket":
        return "socket"
    return name.removesuffix(f"-{site}").removeprefix("django-")


def _certificate(site: host_status.SiteStatus) -> Text:
    if site.certificate_expires is None:
        return Text("-")
    left = site.certificate_expires - datetime.now(UTC)
    style = (
        "red" if left.total_seconds() < 0 else "yellow" if left.days < CERTIFICATE_WARNING_DAYS else "green"
    )
    # Caddy's internal certificates last hours, not days.
    span = f"{left.days} d" if abs(left.days) >= 2 else f"{left.total_seconds() / 3600:.0f} h"
    return Text(f"{site.certificate_expires:%Y-%m-%d} ({span})", style=style)


def _migrations(site: host_status.SiteStatus) -> Text:
    if site.unapplied_migrations is None:
        return Text(f"unknown: {site.migrations_error}", style="red")
    if site.unapplied_migrations:
        return Text(f"{len(site.unapplied_migrations)} unapplied", style="yellow")
    return Text("applied", style="green")
