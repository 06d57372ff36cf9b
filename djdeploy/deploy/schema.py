"""What a rollback does to the sites' databases: the facts it needs, written into the activation's directory
before the switch, so that the supervisor on the host puts the schema back without the deployer.

schema-rollback.sh, shipped beside this module, reads them; its top describes the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from djdeploy.deploy.migrations import SitePlan, manage_path
from djdeploy.host.records import RecordedBackup
from djdeploy.host.sites import Site
from djdeploy.inventory import DatabaseRollback
from djdeploy.ops import db

SCRIPT = resources.files("djdeploy.deploy").joinpath("schema-rollback.sh").read_text()
# In the activation's directory: the facts (read when the new generation is rolled back), the script.
FACTS = "schema"
SCRIPT_NAME = "schema-rollback.sh"


def facts(
    host: str,
    policy: DatabaseRollback,
    *,
    system: Path,
    sites: Sequence[Site],
    plans: Sequence[SitePlan],
    backups: Sequence[RecordedBackup],
) -> str:
    """The file schema-rollback.sh reads: for each site that migrates, how to put its database back."""
    dumps = {backup.site: backup.name for backup in backups}
    by_name = {site.name: site for site in sites}
    lines = [f"policy {policy}", f"host {host}"]
    for site_plan in plans:
        if not site_plan.apply:
            continue
        site = by_name[site_plan.site]
        lines += [f"site {site.name}", f"manage {manage_path(system, site)}"]
        if site.database is not None:
            lines += [f"database {site.database.name} {site.database.owner}", f"backups {db.directory(site)}"]
        lines.append(
            "units " + " ".join(unit for unit in site.units if unit.startswith(f"gunicorn-{site.name}."))
        )
        if site.name in dumps:
            lines.append(f"backup {dumps[site.name]}")
        lines += [f"apply {migration.label}" for migration in site_plan.apply]
        lines += [f"target {app} {name}" for app, name in site_plan.now]
        lines += [f"irreversible {migration.label}" for migration in site_plan.irreversible]
        lines.append("end")
    return "\n".join(lines) + "\n"


def activation_files(
    host: str,
    policy: DatabaseRollback,
    *,
    system: Path,
    sites: Sequence[Site],
    plans: Sequence[SitePlan],
    backups: Sequence[RecordedBackup],
) -> Mapping[str, str]:
    """The files a deploy's activation directory gets: none when no site migrates."""
    if not any(site_plan.apply for site_plan in plans):
        return {}
    text = facts(host, policy, system=system, sites=sites, plans=plans, backups=backups)
    return {FACTS: text, SCRIPT_NAME: SCRIPT, "db.sh": db.SCRIPT}
