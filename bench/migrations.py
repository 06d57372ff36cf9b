"""What migrations cost a deploy on the lab: the plan and backup steps of a deploy without migrations, and
the time a rollback takes to unapply a migration and switch back.

Run as root: python3 -m bench.migrations [--rounds N]. Boots lab1 with the example site, then:
- deploys two releases without migrations in turn, N times, and prints the migration plan's step and the
  backup's (none, as backup.before_migrate is auto) with their median, lowest and highest;
- N times, deploys a release that adds a nullable field and rolls it back with `rollback`, whose switch step
  then unapplies the migration with the new release's code before switching back; and the same rollback of
  a release without migrations, for comparison.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
from pathlib import Path

from rich.console import Console

from djdeploy import inventory
from djdeploy.deploy import fleet, host_run, interrupt
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Result
from djdeploy.errors import DjdeployError
from tests.lab.helpers import lab_hosts, write_inventory
from tests.lab.test_deploy import release_source
from tests.lab.test_schema_rollback import NULLABLE

QUIET = Console(file=io.StringIO())
SWITCH = "set the profile and switch (switch-to-configuration test)"


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (lowest {min(values):.3f}, highest {max(values):.3f})"


def deployed(path: Path) -> Result:
    [result] = fleet.deploy([inventory.load(path).hosts["lab1"]], Options(), QUIET)
    if not result.ok:
        raise DjdeployError(f"the deploy failed: {result.message}")
    return result


def rolled_back(path: Path, to: int | None) -> Result:
    host = inventory.load(path).hosts["lab1"]
    stopper: interrupt.Stopper[Result] = interrupt.Stopper(QUIET.print)
    result = host_run.rollback(host, to, Options(), QUIET, stopper)
    if not result.ok:
        raise DjdeployError(f"the rollback failed: {result.message}")
    return result


def step(result: Result, prefix: str) -> float:
    """The seconds of the result's steps whose names start with prefix (0 when it had none)."""
    return sum(seconds for name, seconds in result.steps if name.startswith(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="deploys of each kind (default 5)")
    rounds = parser.parse_args().rounds
    with lab_hosts(1) as layout, tempfile.TemporaryDirectory() as directory:
        workspace = Path(directory)

        def release(name: str, migrations: dict[str, str] | None = None) -> Path:
            source = release_source(workspace, name)
            for file, text in (migrations or {}).items():
                (source / "example_site" / "notes" / "migrations" / file).write_text(text)
            return write_inventory(layout, workspace, name, exampleSource=str(source))

        first, plain, other, migrating = (
            release("1.0.0"),
            release("1.1.0"),
            release("1.2.0"),
            release("2.0.0", NULLABLE),
        )
        deployed(first)
        plans, backups = [], []
        for number in range(rounds):
            result = deployed(plain if number % 2 == 0 else other)
            plans.append(step(result, "migration plan"))
            backups.append(step(result, "back up"))
        print(f"deploy without migrations ({rounds} rounds): migration plan step {spread(plans)}")
        print(f"  backup step (backup.before_migrate auto: none taken): {spread(backups)}")
        print(f"  both: {spread([plan + backup for plan, backup in zip(plans, backups, strict=True)])}")
        deployed(first)
        with_schema, without = [], []
        for number in range(rounds):
            # Each deploy changes what the host runs, and each rollback returns to the generation before.
            base, changed = (plain, other) if number % 2 == 0 else (other, plain)
            before = deployed(base).generation
            deployed(migrating)
            with_schema.append(step(rolled_back(migrating, before), SWITCH))
            deployed(changed)
            without.append(step(rolled_back(changed, before), SWITCH))
        print(f"rollback's switch that unapplies a migration first ({rounds} rounds): {spread(with_schema)}")
        print(f"rollback's switch of a release without migrations: {spread(without)}")


if __name__ == "__main__":
    main()
