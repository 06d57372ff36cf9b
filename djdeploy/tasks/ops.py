"""Day-two tasks: manage, status, logs and verify."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from djdeploy.console import console, error_console, reports_errors
from djdeploy.host import sites
from djdeploy.ops import logs as journal
from djdeploy.ops import manage as management
from djdeploy.ops import status as host_status
from djdeploy.tasks.common import (
    HOST_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    connect,
    django_words,
    exit_with,
    one_host,
    select_hosts,
    sudo_password,
    task,
)

if TYPE_CHECKING:
    from invoke.context import Context
    from rich.table import Table

    from djdeploy.ops import verify as named_checks

SITE_HELP = "the site, when the host runs several (default: its only site)"


@task(
    positional=["host", "command"],
    help={
        "host": "the inventory host to run the command on",
        "command": "the management command, e.g. migrate; every word after it goes to Django as typed",
        "site": SITE_HELP,
        "inventory": INVENTORY_HELP,
    },
)
@reports_errors
def manage(
    context: Context, host: str, command: str, site: str | None = None, inventory: str | None = None
) -> None:
    """Run a Django management command of a site, as the site's user: djdeploy manage HOST COMMAND [ARGS...]

    Examples: `djdeploy manage prod migrate`, `djdeploy manage prod check --deploy`,
    `djdeploy manage prod showmigrations --plan`, `djdeploy manage prod shell -c 'print(1)'`,
    `djdeploy manage prod createsuperuser`. Every word after COMMAND goes to Django exactly as typed, flags
    included; djdeploy's own options (--site, --inventory) go before COMMAND. `inv manage ...` works the same,
    and a `--` right after COMMAND is allowed (`manage prod showmigrations -- --plan`). From a terminal the
    command gets one (for shell and createsuperuser). The task exits with the command's exit status.
    """
    target = one_host(inventory, host)
    arguments = [command, *django_words(manage)]
    terminal = sys.stdin.isatty()
    # On a terminal the manage command asks for sudo's password itself, when it needs it.
    password = None if terminal else sudo_password([target])
    with connect(target, password) as remote:
        chosen = sites.pick(sites.of_inventory(sites.read(remote), target.sites), site, target.name)
        code = management.run(remote, chosen, arguments, terminal=terminal)
    if code:
        raise exit_with(code)


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

    Hosts are queried in parallel; one that cannot be reached says why. Exits 1 when a host is down: it cannot
    be reached, a unit of a site is not active, a site gives another answer than expected, or a site the
    inventory lists is not in the host's system.
    """
    from djdeploy.ops import status_view

    hosts = select_hosts(inventory, host, on)
    statuses = host_status.query(hosts, timeout=timeout, sudo_password=sudo_password(hosts))
    if json:
        print(host_status.to_json(statuses))
    else:
        console.print(status_view.render(statuses))
    if any(not state.healthy for state in statuses):
        if not json:
            error_console.print(status_view.problems(statuses))
        raise exit_with(1)


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
    """Show the journal of a host's sites and of Caddy: logs HOST [--site x] [--follow] [--since 1h]"""
    target = one_host(inventory, host)
    with connect(target, sudo_password([target])) as remote:
        host_sites = sites.of_inventory(sites.read(remote), target.sites)
        chosen = [sites.pick(host_sites, site, target.name)] if site else host_sites
        code = journal.show(remote, chosen, follow=follow, since=since, lines=lines)
    if code:
        raise exit_with(code)


@task(help={"host": HOST_HELP, "on": TAG_HELP, "inventory": INVENTORY_HELP})
@reports_errors
def verify(
    context: Context, host: str | None = None, on: str | None = None, inventory: str | None = None
) -> None:
    """Check deployed hosts (Caddy, gunicorn, PostgreSQL, manage command, secret key), each check by name."""
    from djdeploy.ops import verify as named_checks  # testinfra: imported only for this task

    hosts = select_hosts(inventory, host, on)
    password = sudo_password(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        reports = list(pool.map(lambda target: named_checks.verify(target, password), hosts))
    failed = []
    for target, results in zip(hosts, reports, strict=True):
        console.print(_checks_table(target.name, results))
        failed += [
            f"{target.name}: {result.check} {result.site}".rstrip() for result in results if not result.passed
        ]
    if failed:
        error_console.print(f"[red]{len(failed)} check(s) failed:[/] {', '.join(failed)}")
        raise exit_with(1)


def _checks_table(host: str, results: list[named_checks.CheckResult]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table("check", "site", "result", "detail", title=host, title_justify="left")
    for result in results:
        verdict = Text("pass", style="green") if result.passed else Text("FAIL", style="bold red")
        table.add_row(result.check, result.site or "-", verdict, Text(result.detail))
    return table
