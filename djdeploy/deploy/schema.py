"""What a rollback does to the sites' databases: the facts it needs, written into the activation's directory
before the switch, so that the supervisor on the host puts the schema back without the deployer.

schema-rollback.sh, shipped beside this module, reads them; its top describes the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from djdeploy.deploy.migrations import SitePlan, manage_path
from djdeploy.host import paths as host_paths
from djdeploy.host.records import RecordedBackup
from djdeploy.host.sites import Site
from djdeploy.inventory import DatabaseRollback
from djdeploy.ops import db
from djdeploy.remote.ssh import Remote

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


# Where a rollback's supervisor finds the facts of the deploy it undoes, and what it did with them.
BEFORE_SWITCH = "schema-before"
SAID = "schema.said"


def of_deploy_command(current: int, target: int) -> str:
    """Prints the facts of the confirmed deploy that made generation current from target, if it left any."""
    return (
        f"found=; for folder in {host_paths.ACTIVATION_DIR}/*; do "
        f'[ "$(cat "$folder/state" 2>/dev/null)" = confirmed ] && '
        f'[ "$(cat "$folder/generation" 2>/dev/null)" = {current} ] && '
        f'[ "$(cat "$folder/previous" 2>/dev/null)" = {target} ] && '
        f'[ -s "$folder/{FACTS}" ] && found=$folder; done; '
        f'[ -z "$found" ] || cat "$found/{FACTS}"'
    )


def rollback_files(remote: Remote, current: int | None, target: int) -> Mapping[str, str]:
    """For a rollback from current to target: the facts of the deploy that migrated between them, which the
    supervisor uses to put the schema back before the switch; none when that deploy migrated nothing."""
    if current is None:
        return {}
    text = remote.run_shell(of_deploy_command(current, target), privileged=True).stdout
    if not text.strip():
        return {}
    return {BEFORE_SWITCH: text, SCRIPT_NAME: SCRIPT, "db.sh": db.SCRIPT}


def said(remote: Remote, activation_id: str) -> list[str]:
    """What the supervisor did to the databases, a sentence per site (none when it did nothing)."""
    folder = f"{host_paths.ACTIVATION_DIR}/{activation_id}"
    return remote.run_shell(f"cat {folder}/{SAID} 2>/dev/null; true", privileged=True).stdout.splitlines()
