"""The deploy, rollback and unlock tasks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from djdeploy.console import console, error_console, reports_errors
from djdeploy.errors import DjdeployError
from djdeploy.inventory import Host, Inventory, at_least_one, positive_seconds
from djdeploy.inventory import build_on as build_on_of
from djdeploy.tasks.common import (
    HOST_HELP,
    INVENTORY_HELP,
    TAG_HELP,
    load_inventory,
    one_host,
    select_hosts,
    sudo_password,
    task,
)

if TYPE_CHECKING:
    from invoke.context import Context

    from djdeploy.deploy.outcome import Result

# The task bodies import the modules that do the work (djdeploy/deploy/...): the program starts without them.
T = TypeVar("T")
# The exit status of a deployer that left at a second Ctrl-C, as a shell's for SIGINT.
LEFT_EARLY_STATUS = 130


@contextmanager
def leaves_at_once() -> Iterator[None]:
    """On interrupt.LeftEarly, print it and leave now: host runs still waiting on their hosts must not hold
    the process (the hosts decide by themselves)."""
    from djdeploy.deploy import interrupt

    try:
        yield
    except interrupt.LeftEarly as exc:
        from rich.panel import Panel

        error_console.print(Panel(exc.message, title="left early", title_align="left", border_style="red"))
        console.file.flush()
        error_console.file.flush()
        os._exit(LEFT_EARLY_STATUS)


def option(name: str, value: str | None, kind: Callable[[str], T], wanted: str, default: str) -> T | None:
    """A command-line value checked as the inventory's are; None when not given."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise DjdeployError(
            f"--{name} must be {wanted}, not '{value}'. Leave it out for {default}."
        ) from None


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
        "migrate-timeout": "seconds the migrations applied before the switch may take (default: inventory, "
        "else 600)",
        "confirm-timeout": "seconds the host waits for confirmation before rolling back (default: inventory)",
        "verify": "before confirming, also run every named check of `verify`; a failed check rolls back",
        "require-safe-migrations": "refuse, before switching, a release whose migrations break the old "
        "release while it still serves (dropped or renamed columns, NOT NULL without a default)",
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
    batch: str | None = None,
    parallel: str | None = None,
    substitute: bool = False,
    activation_timeout: str | None = None,
    confirm_timeout: str | None = None,
    migrate_timeout: str | None = None,
    verify: bool = False,
    build_on: str | None = None,
    require_safe_migrations: bool = False,
) -> None:
    """Build, copy, switch and check hosts; a host that fails is rolled back and the task exits 1.

    Ctrl-C rolls back the hosts under way and waits for them; a second Ctrl-C leaves them to decide alone.
    """
    from djdeploy.deploy import fleet
    from djdeploy.deploy.options import Options

    seconds, count = positive_seconds, at_least_one
    positive, whole = "a positive number of seconds", "a whole number from 1"
    options = Options(
        dry_run=dry_run,
        substitute_on_destination=substitute,
        parallel=option("parallel", parallel, count, whole, "4 hosts at once") or 4,
        batch=option("batch", batch, count, whole, "all hosts in one batch"),
        activation_timeout=option(
            "activation-timeout", activation_timeout, seconds, positive, "the inventory's timeouts.activation"
        ),
        confirm_timeout=option(
            "confirm-timeout", confirm_timeout, seconds, positive, "the inventory's timeouts.confirm"
        ),
        migrate_timeout=option(
            "migrate-timeout", migrate_timeout, seconds, positive, "the inventory's timeouts.migrate"
        ),
        verify=verify,
        require_safe_migrations=require_safe_migrations,
    )
    hosts = select_hosts(inventory, host, on)
    known = load_inventory(inventory)
    if build_on:
        hosts = building_on(build_on, hosts, known)
    options = replace(options, sudo_password=sudo_password([*hosts, *builders(hosts, known)]))
    with leaves_at_once():
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


def _summarize(results: list[Result]) -> None:
    """A table of the hosts when there are several; every failure in full once, in the error's box."""
    failed = [result for result in results if not result.ok]
    if len(results) > 1:
        from rich.table import Table

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
    """Switch a host back to an earlier generation, with the same health check and confirmation as deploy.

    Without --to: the newest earlier generation whose deploy passed its checks and was confirmed.
    """
    from djdeploy.deploy import host_run, interrupt
    from djdeploy.deploy.options import Options

    target = one_host(inventory, host)
    options = Options(sudo_password=sudo_password([target]))
    stopper: interrupt.Stopper[Result] = interrupt.Stopper(console.print)
    goal = to if to >= 0 else None
    with leaves_at_once():
        stopper.run([lambda: host_run.rollback(target, goal, options, console, stopper)], 1)


@task(
    help={
        "host": "the host whose deploy lock to break",
        "inventory": INVENTORY_HELP,
        "force": "also when its activation still runs: make it roll back now, wait for that, then unlock",
    }
)
@reports_errors
def unlock(context: Context, host: str, inventory: str | None = None, force: bool = False) -> None:
    """Break a host's deploy lock on purpose (when the deploy that held it died)."""
    from djdeploy.deploy import unlock as lock_breaking
    from djdeploy.remote.ssh import Remote

    target = one_host(inventory, host)
    with Remote(target.ssh_target, sudo_password([target])) as remote:
        holder = lock_breaking.unlock(remote, target, force=force, console=console)
    if holder is None:
        console.print(f"{target.name} is not locked.")
        return
    console.print(f"Broke the lock of {target.name}, held by {holder.describe()}.")
