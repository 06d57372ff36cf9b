"""How a host's deploy or rollback ended, as its summary says."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DEPLOYED = "deployed"
    UNCHANGED = "unchanged"
    DRY_RUN = "dry run"
    ROLLED_BACK = "rolled back"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    # Not tried: an earlier batch failed.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Result:
    host: str
    outcome: Outcome
    message: str
    generation: int | None = None
    steps: tuple[tuple[str, float], ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in {Outcome.DEPLOYED, Outcome.UNCHANGED, Outcome.DRY_RUN}
