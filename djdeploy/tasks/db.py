"""The db tasks: back up a site's database on its host, list the backups, restore one, download one."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from djdeploy.console import console, reports_errors
from djdeploy.errors import DjdeployError
from djdeploy.host import sites
from djdeploy.ops import db
from djdeploy.tasks.common import INVENTORY_HELP, connect, one_host, sudo_password, task

if TYPE_CHECKING:
    from invoke.context import Context

    from djdeploy.host.sites import Site
    from djdeploy.inventory import Host
    from djdeploy.remote.ssh import Remote

HOST_HELP = "the inventory host the site runs on"
SITE_HELP = "the site (default: its only site with a database on the host)"


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _with_database(host_sites: tuple[Site, ...]) -> tuple[Site, ...]:
    return tuple(site for site in host_sites if site.database is not None)


@contextmanager
def _site_of(inventory: str | None, host: str, site: str | None) -> Iterator[tuple[Host, Remote, Site]]:
    """The inventory host, a connection to it, and the site picked among its sites with a database."""
    target = one_host(inventory, host)
    with connect(target, sudo_password([target])) as remote:
        host_sites = _with_database(sites.of_inventory(sites.read(remote), target.sites))
        yield target, remote, sites.pick(host_sites, site, target.name)


@task(positional=["host"], help={"host": HOST_HELP, "site": SITE_HELP, "inventory": INVENTORY_HELP})
@reports_errors
def backup(context: Context, host: str, site: str | None = None, inventory: str | None = None) -> None:
    """Dump a site's database on its host now (pg_dump, custom format), into a directory only root reads."""
    with _site_of(inventory, host, site) as (target, remote, chosen):
        started = time.monotonic()
        made = db.backup(remote, chosen, "manual")
    console.print(
        f"Backed up {chosen.name} on {target.name}: {made.name}, {_size(made.size)} in "
        f"{time.monotonic() - started:.1f} s ({db.directory(chosen)}/)."
    )


@task(positional=["host"], help={"host": HOST_HELP, "inventory": INVENTORY_HELP})
@reports_errors
def backups(context: Context, host: str, inventory: str | None = None) -> None:
    """List the database backups of every site on a host: when, why, size."""
    target = one_host(inventory, host)
    with connect(target, sudo_password([target])) as remote:
        host_sites = _with_database(sites.of_inventory(sites.read(remote), target.sites))
        found = [backup for site in host_sites for backup in db.backups(remote, site)]
    if not found:
        console.print(f"{target.name} has no database backup yet.")
        return
    from rich.table import Table

    table = Table("site", "backup", "made", "why", "size")
    for made in found:
        table.add_row(
            made.site,
            made.name,
            f"{made.created.astimezone():%Y-%m-%d %H:%M:%S}",
            made.label,
            _size(made.size),
        )
    console.print(table)


@task(
    positional=["host"],
    help={
        "host": HOST_HELP,
        "site": SITE_HELP,
        "backup": "the backup to restore, as `db.backups` names it (default: the newest)",
        "yes": "restore without asking (for scripts)",
        "inventory": INVENTORY_HELP,
    },
)
@reports_errors
def restore(
    context: Context,
    host: str,
    site: str | None = None,
    backup: str | None = None,
    yes: bool = False,
    inventory: str | None = None,
) -> None:
    """Restore a site's database from a backup: stops its gunicorn, restores, starts it, checks its health."""
    from djdeploy.deploy import health

    with _site_of(inventory, host, site) as (target, remote, chosen):
        restored = db.find(remote, chosen, backup)
        question = (
            f"Restore the database of {chosen.name} on {target.name} from {restored.name} "
            f"({_size(restored.size)}, made {restored.created.astimezone():%Y-%m-%d %H:%M:%S})? Everything "
            "written to it since then is lost, and the site is down while it restores."
        )
        if not yes:
            if not sys.stdin.isatty():
                raise DjdeployError(f"{question} Nobody is here to answer: add --yes to restore.")
            if console.input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
                console.print("Nothing was restored.")
                return
        started = time.monotonic()
        db.restore(remote, chosen, restored)
        elapsed = time.monotonic() - started
        report = health.check(remote, target.address, (chosen,), target.timeouts.health)
    if report.problems:
        raise DjdeployError(
            f"Restored {restored.name} into {chosen.name} on {target.name} in {elapsed:.1f} s, but the site "
            f"is unhealthy: {'; '.join(report.problems)}. See why with "
            f"`djdeploy logs {target.name} --site {chosen.name}`."
        )
    console.print(
        f"Restored {restored.name} into {chosen.name} on {target.name} in {elapsed:.1f} s; "
        "the site is healthy."
    )


@task(
    positional=["host"],
    help={
        "host": HOST_HELP,
        "site": SITE_HELP,
        "backup": "download this backup (default: make a new one and download it)",
        "to": "the file to write (default: SITE-HOST-BACKUP in this directory)",
        "inventory": INVENTORY_HELP,
    },
)
@reports_errors
def pull(
    context: Context,
    host: str,
    site: str | None = None,
    backup: str | None = None,
    to: str | None = None,
    inventory: str | None = None,
) -> None:
    """Download a dump of a site's database, for a local copy: `pg_restore -d mydb FILE` loads it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with _site_of(inventory, host, site) as (target, remote, chosen):
        pulled = db.find(remote, chosen, backup) if backup else db.backup(remote, chosen, "pull")
        destination = Path(to or f"{chosen.name}-{target.name}-{pulled.name}")
        with Progress(
            "{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
        ) as progress:
            bar = progress.add_task(f"{pulled.name}", total=pulled.size)
            db.download(remote, chosen, pulled, destination, lambda count: progress.advance(bar, count))
    console.print(f"Downloaded {pulled.name} of {chosen.name} on {target.name} to {destination}.")
