"""The Django sites a host runs, as the manifest of its current system describes them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host.paths import CURRENT_SYSTEM, SITES_MANIFEST
from djdeploy.remote.ssh import Remote

MANIFEST_PATH = f"{CURRENT_SYSTEM}/{SITES_MANIFEST}"
# The web server in front of every site.
CADDY_UNIT = "caddy.service"


class SiteError(DjdeployError):
    pass


@dataclass(frozen=True)
class Database:
    name: str
    owner: str


@dataclass(frozen=True)
class ScheduledCommand:
    """A management command the site runs on a schedule: a oneshot service and the timer that starts it."""

    name: str
    service: str
    timer: str
    command: tuple[str, ...]
    on_calendar: str


@dataclass(frozen=True)
class Site:
    """One entry of the manifest (nix/sites/definitions.nix writes it)."""

    name: str
    hostname: str
    aliases: tuple[str, ...]
    port: int
    auth: bool
    health_path: str
    health_status: int
    units: tuple[str, ...]
    manage_command: str
    user: str
    group: str
    secret_key_file: str
    socket_path: str
    database: Database | None
    scheduled: tuple[ScheduledCommand, ...] = ()

    @property
    def gunicorn_unit(self) -> str:
        return f"gunicorn-{self.name}.service"

    @property
    def migrate_unit(self) -> str:
        return f"django-migrate-{self.name}.service"

    @property
    def tls(self) -> bool:
        """Whether Caddy serves the site over HTTPS: on every port but 80 (nix/sites/addresses.nix)."""
        return self.port != 80

    @property
    def canonical_url(self) -> str:
        """Where the site's aliases redirect to."""
        if not self.tls:
            return f"http://{self.hostname}"
        return f"https://{self.hostname}" + ("" if self.port == 443 else f":{self.port}")


def parse_manifest(text: str, source: str) -> tuple[Site, ...]:
    """Read the manifest's JSON; source names where it came from in error messages."""
    try:
        entries = json.loads(text)
        if not isinstance(entries, list):
            raise TypeError("expected a list of sites")
        return tuple(_site(entry) for entry in entries)
    except (ValueError, TypeError, KeyError) as exc:
        raise SiteError(
            f"The sites manifest {source} is not what this djdeploy expects ({exc!r}). "
            "Deploy the host again with this version of djdeploy."
        ) from exc


def _site(entry: dict[str, object]) -> Site:
    health = entry["healthCheck"]
    database = entry["database"]
    if not isinstance(health, dict) or not (database is None or isinstance(database, dict)):
        raise TypeError("healthCheck and database must be objects")
    return Site(
        name=str(entry["name"]),
        hostname=str(entry["hostname"]),
        aliases=tuple(str(alias) for alias in _list(entry["aliases"])),
        port=int(str(entry["port"])),
        auth=bool(entry["auth"]),
        health_path=str(health["path"]),
        health_status=int(health["status"]),
        units=tuple(str(unit) for unit in _list(entry["units"])),
        manage_command=str(entry["manageCommand"]),
        user=str(entry["user"]),
        group=str(entry["group"]),
        secret_key_file=str(entry["secretKeyFile"]),
        socket_path=str(entry["socketPath"]),
        database=None if database is None else Database(str(database["name"]), str(database["owner"])),
        # Systems built before scheduled commands existed have no such key.
        scheduled=tuple(_scheduled(job) for job in _list(entry.get("scheduled", []))),
    )


def _scheduled(job: object) -> ScheduledCommand:
    if not isinstance(job, dict):
        raise TypeError(f"expected a scheduled command, got {job!r}")
    return ScheduledCommand(
        name=str(job["name"]),
        service=str(job["service"]),
        timer=str(job["timer"]),
        command=tuple(str(argument) for argument in _list(job["command"])),
        on_calendar=str(job["onCalendar"]),
    )


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value


def of_system(system: Path) -> tuple[Site, ...]:
    """The sites of a system built on this machine (none when it has no manifest)."""
    manifest = system / SITES_MANIFEST
    return parse_manifest(manifest.read_text(), str(manifest)) if manifest.exists() else ()


def of_remote_system(remote: Remote, system: Path) -> tuple[Site, ...]:
    """The sites of a system that is on the host already, such as a rollback's target."""
    result = remote.run(["cat", str(system / SITES_MANIFEST)], check=False)
    return parse_manifest(result.stdout, f"of {system} on {remote.target.name}") if result.ok else ()


def read(remote: Remote) -> tuple[Site, ...]:
    """The sites of the host's current system."""
    result = remote.run(["cat", MANIFEST_PATH], check=False)
    if not result.ok:
        raise SiteError(
            f"{remote.target.display} has no sites manifest at {MANIFEST_PATH}: its current system was not "
            "built with djdeploy's site definitions. Deploy it first (`djdeploy deploy`)."
        )
    return parse_manifest(result.stdout, f"of {remote.target.name}")


def of_inventory(sites: Sequence[Site], listed: Sequence[str]) -> tuple[Site, ...]:
    """The sites the inventory lists for the host (all of them when it lists none)."""
    if not listed:
        return tuple(sites)
    return tuple(site for site in sites if site.name in listed)


def pick(sites: Sequence[Site], wanted: str | None, host_name: str) -> Site:
    """The site named by --site, or the host's only site."""
    names = ", ".join(site.name for site in sites)
    if wanted:
        for site in sites:
            if site.name == wanted:
                return site
        raise SiteError(f"{host_name} runs no site named '{wanted}'. Its sites: {names or 'none'}.")
    if not sites:
        raise SiteError(f"{host_name} runs no Django site (its current system's manifest lists none).")
    if len(sites) > 1:
        raise SiteError(f"{host_name} runs several sites ({names}): choose one with --site.")
    return sites[0]
