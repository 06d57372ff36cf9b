"""Whether a site's database has applied every migration file of a release, told on the host without Django.

migration-check.sh, shipped beside this module, compares the release's migration files with the database's
django_migrations in one query (its top says which files count); the deploy's migration plan and `status`
ask it before they start Django, which costs a second or more per site.
"""

from __future__ import annotations

import shlex
from importlib import resources

from djdeploy.host import paths

CHECK_SCRIPT = resources.files("djdeploy.host").joinpath("migration-check.sh").read_text()
# Each release's list of migration files, kept by migration-check.sh.
FILES_CACHE = paths.MIGRATION_FILES


def check_command(manage: str, running: str, database: str, known: str | None = None) -> str:
    """The shell command that prints "applied", "new" or "unknown"; its arguments are shell words (a "$name"
    expands on the host), as migration-check.sh's top describes them."""
    script = shlex.join(["sh", "-c", CHECK_SCRIPT, "djdeploy-migration-check"])
    return " ".join([script, manage, running, database, FILES_CACHE, *([known] if known else [])])
