"""The migrations a release would apply to each site's database, asked on the host of the release's own code.

migration-plan.py, shipped beside this module, runs in the new system's `manage-<site> shell` against the
site's real database: it reads, it changes nothing. Starting Django costs a second or more per site, so a
deploy first asks host.migration_files: when the database has applied every migration file of the release
that counts, the plan is empty without starting Django. A site with django-migration-linter among its apps
gets the linter's errors among the unsafe reasons and its warnings shown (migration_lint.py).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from djdeploy.deploy import migration_lint
from djdeploy.errors import DjdeployError
from djdeploy.host import migration_files
from djdeploy.host import paths as host_paths
from djdeploy.host.sites import Site
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
    # What the site's migration linter warns of, shown without refusing anything.
    warnings: tuple[str, ...] = ()

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
    # The site's database does not exist yet: its first deploy applies every migration.
    new_database: bool = False

    @property
    def unsafe(self) -> tuple[Migration, ...]:
        return tuple(migration for migration in self.apply if migration.unsafe)

    @property
    def irreversible(self) -> tuple[Migration, ...]:
        return tuple(migration for migration in self.apply if migration.irreversible)


class MigrationPlanError(DjdeployError):
    pass


def manage_path(system: Path, site: Site) -> str:
    """The site's manage command in system (the release's own code)."""
    return f"{system}/sw/bin/{site.manage_command}"


def command(system: Path, site: Site) -> list[str]:
    """The release's own manage command, running the plan script."""
    return [manage_path(system, site), "shell", "-c", SCRIPT]


def check_command(system: Path, sites: Sequence[Site]) -> str:
    """One shell command that prints "SITE applied" or "SITE unknown" for each site with a local database."""
    return "; ".join(
        f"printf '%s ' {shlex.quote(site.name)}; "
        + migration_files.check_command(
            shlex.quote(manage_path(system, site)),
            shlex.quote(manage_path(Path(host_paths.CURRENT_SYSTEM), site)),
            shlex.quote(site.database.name),
        )
        for site in sites
        if site.database is not None
    )


def plan_sites(remote: Remote, system: Path, sites: Sequence[Site]) -> tuple[SitePlan, ...]:
    """Each site's plan for system, in the order of sites: empty, after one query, when the database has
    applied every migration the release ships; else asked of the release's code."""
    checking = check_command(system, sites)
    # A check that fails answers nothing: Django is asked then.
    answers = remote.run_shell(checking, privileged=True, check=False).stdout.split("\n") if checking else []
    said = dict(line.partition(" ")[::2] for line in answers)
    return tuple(
        SitePlan(site.name, (), ())
        if said.get(site.name) == "applied"
        else SitePlan(site.name, (), (), new_database=True)
        if said.get(site.name) == "new"
        else plan(remote, system, site)
        for site in sites
    )


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


def parse(site: str, text: str) -> SitePlan:
    answer = json.loads(text)
    return SitePlan(
        site, tuple(_migration(step) for step in answer["apply"]), tuple(sorted(answer["now"].items()))
    )


def _migration(step: dict[str, Any]) -> Migration:
    linted = migration_lint.parse(step["lint"]) if "lint" in step else migration_lint.Findings()
    return Migration(
        step["app"],
        step["name"],
        (*step["unsafe"], *linted.errors),
        tuple(step["irreversible"]),
        linted.warnings,
    )


def summary(plans: Sequence[SitePlan]) -> str:
    """The plans in a few words, for the deploy's step line."""
    if not any(site_plan.apply or site_plan.new_database for site_plan in plans):
        return "nothing to apply"
    return "; ".join(f"{site_plan.site}: {_in_words(site_plan)}" for site_plan in plans)


def _in_words(site_plan: SitePlan) -> str:
    if site_plan.new_database:
        return "a new database, every migration applies"
    if site_plan.apply:
        return f"{', '.join(m.label for m in site_plan.apply)} (apply {len(site_plan.apply)})"
    return "nothing to apply"


def describe(site_plan: SitePlan) -> list[str]:
    """The plan as the deploy prints it, a line each."""
    if site_plan.new_database:
        return [f"{site_plan.site}: {_in_words(site_plan)}"]
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
    for migration in site_plan.apply:
        if migration.warnings:
            lines.append(f"  warned of: {migration.label} ({'; '.join(migration.warnings)})")
    back = ", ".join(f"migrate {app} {name}" for app, name in site_plan.now)
    lines.append(f"  to go back: {back}")
    return lines
