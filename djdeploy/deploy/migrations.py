"""The migrations a release would apply to each site's database, asked on the host of the release's own code.

migration-plan.py, shipped beside this module, runs in the new system's `manage-<site> shell` against the
site's real database: it reads, it changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host.paths import CURRENT_SYSTEM
from djdeploy.host.sites import Site, of_remote_system
from djdeploy.remote.ssh import Remote

SCRIPT = resources.files("djdeploy.deploy").joinpath("migration-plan.py").read_text()
_MARKER = "@@djdeploy-migration-plan "


@dataclass(frozen=True)
class Migration:
    app: str
    name: str
    # What it does that breaks the old release while it still serves, and why it cannot be unapplied.
    unsafe: tuple[str, ...] = ()
    irreversible: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.app}.{self.name}"


@dataclass(frozen=True)
class SitePlan:
    """What a release would apply to one site's database, and where each app it moves is now."""

    site: str
    apply: tuple[Migration, ...]
    # (app, the migration it is at now, or "zero"): what `migrate <app> <name>` returns to.
    now: tuple[tuple[str, str], ...]

    @property
    def unsafe(self) -> tuple[Migration, ...]:
        return tuple(migration for migration in self.apply if migration.unsafe)

    @property
    def irreversible(self) -> tuple[Migration, ...]:
        return tuple(migration for migration in self.apply if migration.irreversible)


class MigrationPlanError(DjdeployError):
    pass


def command(system: Path, site: Site) -> list[str]:
    """The release's own manage command, running the plan script."""
    return [f"{system}/sw/bin/{site.manage_command}", "shell", "-c", SCRIPT]


def plan(remote: Remote, system: Path, site: Site) -> SitePlan:
    """Ask the host, with the code of system, which migrations of site are not applied yet."""
    result = remote.run(command(system, site), check=False, privileged=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith(_MARKER)]
    if not result.ok or not lines:
        said = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise MigrationPlanError(
            f"The new release of {site.name} could not list its migrations on {remote.target.name} "
            f"(exit code {result.exit_code}); its settings or database may be broken. It said:\n{said}"
        )
    return parse(site.name, lines[-1].removeprefix(_MARKER))


def plan_sites(remote: Remote, system: Path, sites: Sequence[Site]) -> tuple[SitePlan, ...]:
    """The plans of the sites with a local database that the host runs already (a new site has no database
    yet: its migrations are the switch's)."""
    running = {site.name for site in of_remote_system(remote, Path(CURRENT_SYSTEM))}
    return tuple(
        plan(remote, system, site) for site in sites if site.database is not None and site.name in running
    )


def parse(site: str, text: str) -> SitePlan:
    answer = json.loads(text)
    return SitePlan(
        site,
        tuple(
            Migration(step["app"], step["name"], tuple(step["unsafe"]), tuple(step["irreversible"]))
            for step in answer["apply"]
        ),
        tuple(sorted(answer["now"].items())),
    )


def describe(site_plan: SitePlan) -> list[str]:
    """The plan as the deploy prints it, a line each."""
    if not site_plan.apply:
        return [f"{site_plan.site}: no migrations to apply"]
    lines = [
        f"{site_plan.site}: {len(site_plan.apply)} migration(s) to apply: "
        + ", ".join(migration.label for migration in site_plan.apply)
    ]
    for migration in site_plan.unsafe:
        lines.append(
            f"  unsafe while the old release serves: {migration.label} ({'; '.join(migration.unsafe)})"
        )
    for migration in site_plan.irreversible:
        lines.append(f"  cannot be unapplied: {migration.label} ({'; '.join(migration.irreversible)})")
    back = ", ".join(f"migrate {app} {name}" for app, name in site_plan.now)
    lines.append(f"  to go back: {back}")
    return lines
