"""The deploy, rollback and unlock tasks."""

from __future__ import annotations

from dataclasses import replace

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from djdeploy.console import console, reports_errors
from djdeploy.deploy import fleet, host_run
from djdeploy.errors import DjdeployError
from djdeploy.host import lock
from djdeploy.inventory import Host, Inventory
from djdeploy.inventory import build_on as build_on_of
from djdeploy.remote.ssh import Remote
from djdeploy.tasks.common import (
    HOST_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    load_inventory,
    one_host,
    select_hosts,
    sudo_password,
)


@task(
    help={
        "host": HOST_HELP,
        "on": TAG_HELP,
        "inventory": INVENTORY_HELP,
        "dry-run": "build and show what would change (paths to copy, units to restart); copy nothing",
        "batch": "deploy in rolling batches of N hosts; stop after the first batch with a failure",
        "parallel": "how many hosts to deploy at once (default 4)",
        "substitute": "let hosts fetch paths from their own binary caches instead of copying them",
        "activation-timeout": "seconds switch-to-configuration may take (default: inventory, else 600)",
        "confirm-timeout": "seconds the host waits for confirmation before rolling back (default: inventory)",
        "verify": "before confirming, also run every named check of `verify`; a failed check rolls back",
        "build-on": "where to build: local, target (each host its own), or a build host (inventory name or "
        "user@host); default: the inventory's build.on, else local",
    }
)
@reports_errors
def deploy(
    context: Context,
    host: str | None = None,
    on: str | None = None,
    inventory: str | None = None,
    dry_run: bool = False,
    batch: int = 0,
    parallel: int = 4,
    substitute: bool = False,
    activation_timeout: float = 0,
    confirm_timeout: float = 0,
    verify: bool = False,
    build_on: str | None = None,
) -> None:
    """Build, copy, switch and check hosts; a host that fails is rolled back and the task exits 1."""
    hosts = select_hosts(inventory, host, on)
    known = load_inventory(inventory)
    if build_on:
        hosts = building_on(build_on, hosts, known)
    options = host_run.Options(
        dry_run=dry_run,
        substitute_on_destination=substitute,
        parallel=parallel,
        batch=batch or None,
        activation_timeout=activation_timeout or None,
        confirm_timeout=confirm_timeout or None,
        sudo_password=sudo_password([*hosts, *builders(hosts, known)]),
        verify=verify,
    )
    results = fleet.deploy(hosts, options, console)
    _summarize(results)


def building_on(text: str, hosts: list[Host], known: Inventory) -> list[Host]:
    """The hosts with --build-on in place of their inventory's build.on."""
    try:
        return [
            replace(host, build=replace(host.build, on=build_on_of(text, host, known.hosts)))
            for host in hosts
        ]
    except ValueError as exc:
        raise DjdeployError(f"--build-on: {exc}.") from None


def builders(hosts: list[Host], known: Inventory) -> list[Host]:
    """The inventory's hosts that build for these hosts: their sudo needs the password too."""
    names = {host.build.on.builder.name for host in hosts if host.build.on.builder is not None}
    return [known.hosts[name] for name in sorted(names) if name in known.hosts]


def _summarize(results: list[host_run.Result]) -> None:
    """A table of the hosts when there are several; every failure in full once, in the error's box."""
    failed = [result for result in results if not result.ok]
    if len(results) > 1:
        table = Table("host", "outcome", "detail")
        for result in results:
            style = "green" if result.ok else "red"
            # A failure's first line only: all of it follows in the error's box.
            table.add_row(result.host, f"[{style}]{result.outcome}[/]", result.message.split("\n", 1)[0])
        console.print(table)
    if failed:
        raise DjdeployError("\n\n".join(result.message for result in failed))


@task(
    help={
        "host": "the host to roll back",
        "to": "generation to return to (default: the one before)",
        "inventory": INVENTORY_HELP,
    }
)
@reports_errors
def rollback(context: Context, host: str, to: int = -1, inventory: str | None = None) -> None:
    """Switch a host back to an earlier generation, with the same health check and confirmation as deploy."""
    target = one_host(inventory, host)
    options = host_run.Options(sudo_password=sudo_password([target]))
    host_run.rollback(target, to if to >= 0 else None, options, console)


@task(help={"host": "the host whose deploy lock to break", "inventory": INVENTORY_HELP})
@reports_errors
def unlock(context: Context, host: str, inventory: str | None = None) -> None:
    """Break a host's deploy lock on purpose (when the deploy that held it died)."""
    target = one_host(inventory, host)
    with Remote(target.ssh_target, sudo_password([target])) as remote:
        holder = lock.read(remote)
        if holder is None:
            console.print(f"{target.name} is not locked.")
            return
        lock.release(remote)
    console.print(f"Broke the lock of {target.name}, held by {holder.describe()}.")
