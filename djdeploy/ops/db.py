"""A site's database dumps on its host: make one, list them, restore one, download one.

The work on the host is db.sh, shipped beside this module and run as root: pg_dump and pg_restore as
PostgreSQL's superuser, dumps in a root-only directory per site, never in the Nix store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host import paths as host_paths
from djdeploy.host.sites import Database, Site
from djdeploy.remote.ssh import Remote

SCRIPT = resources.files("djdeploy.ops").joinpath("db.sh").read_text()
# 20261203T101500Z-manual.dump: when it was made (UTC) and why (a label).
_NAME = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)-(?P<label>[a-z0-9-]+)\.dump")
LABEL = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True)
class Backup:
    """One dump of a site's database on its host."""

    site: str
    name: str
    size: int
    created: datetime
    # Why it was made: "manual", "pull", or the generation it was taken before ("before-g12").
    label: str


class BackupError(DjdeployError):
    pass


def directory(site: Site) -> str:
    return f"{host_paths.BACKUP_DIR}/{site.name}"


def script_command(action: str, *arguments: str) -> list[str]:
    """db.sh ACTION ARGUMENTS, as one command line for the host."""
    return ["sh", "-c", SCRIPT, "djdeploy-db", action, *arguments]


def database_of(site: Site, host: str) -> Database:
    if site.database is None:
        raise BackupError(
            f"{site.name} on {host} uses a database that its host does not run (the module's "
            "`database.createLocally = false`), so djdeploy cannot dump it: back it up where it lives."
        )
    return site.database


# The label of the dumps a deploy takes before it migrates.
BEFORE_DEPLOY = "before-deploy"


def backup_command(site: Site, host: str, label: str, keep: int | None = None) -> list[str]:
    """The command that dumps the site's database; keep: then the newest keep dumps of that label stay."""
    database = database_of(site, host)
    if not LABEL.fullmatch(label):
        raise ValueError(f"not a backup label: {label!r}")
    pruning = [str(keep)] if keep is not None else []
    return script_command("backup", directory(site), database.name, label, *pruning)


def backup(remote: Remote, site: Site, label: str, keep: int | None = None) -> Backup:
    """Dump the site's database now; keep: then remove all but the newest keep dumps of that label."""
    output = remote.run(
        backup_command(site, remote.target.name, label, keep), privileged=True, timeout=3600
    ).stdout.split()
    name, size = output[0], int(output[1])
    return _backup(site, name, size)


def backups(remote: Remote, site: Site) -> list[Backup]:
    """The site's dumps on the host, oldest first."""
    listing = remote.run(script_command("list", directory(site)), privileged=True).stdout
    found = []
    for line in listing.splitlines():
        name, size, _mtime = line.split()
        if _NAME.fullmatch(name):
            found.append(_backup(site, name, int(size)))
    return sorted(found, key=lambda backup: backup.name)


def _backup(site: Site, name: str, size: int) -> Backup:
    match = _NAME.fullmatch(name)
    if match is None:
        raise BackupError(f"The host named a backup {name!r}, which djdeploy does not make.")
    created = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return Backup(site.name, name, size, created, match["label"])


def find(remote: Remote, site: Site, name: str | None) -> Backup:
    """The backup of that name, or the newest; a clear error when there is none."""
    found = backups(remote, site)
    if not found:
        raise BackupError(
            f"{site.name} on {remote.target.name} has no backup yet. Make one with "
            f"`djdeploy db.backup {remote.target.name} --site {site.name}`."
        )
    if name is None:
        return found[-1]
    for candidate in found:
        if candidate.name == name:
            return candidate
    raise BackupError(
        f"{site.name} on {remote.target.name} has no backup {name!r}. Its backups: "
        f"{', '.join(backup.name for backup in found)} (`djdeploy db.backups {remote.target.name}`)."
    )


def restore(remote: Remote, site: Site, chosen: Backup) -> None:
    """Stop the site, restore the dump over its database, start the site again."""
    database = database_of(site, remote.target.name)
    units = [unit for unit in site.units if unit.startswith(f"gunicorn-{site.name}.")]
    remote.run(
        script_command("restore", directory(site), chosen.name, database.name, database.owner, *units),
        privileged=True,
        timeout=3600,
    )


def download(remote: Remote, site: Site, chosen: Backup, to: Path, on_bytes: Callable[[int], None]) -> None:
    remote.download(script_command("cat", directory(site), chosen.name), to, on_bytes, privileged=True)
