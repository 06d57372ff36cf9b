"""What a deploy or rollback is asked to do, from the command line: small, so the task reads it before the
modules that do the work are loaded."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    substitute_on_destination: bool = False
    parallel: int = 4
    batch: int | None = None
    activation_timeout: float | None = None
    confirm_timeout: float | None = None
    migrate_timeout: float | None = None
    sudo_password: str | None = field(default=None, repr=False)
    # Also run every named check of `verify` before confirming.
    verify: bool = False
    # Refuse a plan with a migration unsafe while the old release serves (or the inventory's setting).
    require_safe_migrations: bool = False
