"""This repository's tasks for `inv`: djdeploy's own, as any project gets them, and `test`, its checks."""

from __future__ import annotations

import sys
from glob import glob
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from djdeploy.tasks import namespace as ns

# Shell that djdeploy ships and runs: on hosts (the supervisor, db), on build hosts, to install it, and the
# lab's builders and stage 2.
SHELL_SCRIPTS = (
    "djdeploy/deploy/supervisor.sh",
    "djdeploy/deploy/copy_to_host.sh",
    "djdeploy/host/migration-check.sh",
    "djdeploy/deploy/schema-rollback.sh",
    "djdeploy/ops/db.sh",
    "nix/lab/stage-2.sh",
    "scripts/install.sh",
    *sorted(glob("nix/lab/builders/*.sh", root_dir=Path(__file__).parent)),
)


@task(help={"lab": "also run the end-to-end tests on lab hosts (needs root; default true)"})
def test(context: Context, lab: bool = True) -> None:  # noqa: PT028 (an Invoke task, not a pytest test)
    """Run ruff, mypy and the test suite (lab tests included when run as root)."""
    python = sys.executable
    context.run(f"{python} -m ruff check .", echo=True)
    context.run(f"{python} -m ruff format --check .", echo=True)
    context.run(f"{python} -m mypy", echo=True)
    context.run(f"shellcheck {' '.join(SHELL_SCRIPTS)}", echo=True)
    selection = "" if lab else " -m 'not lab'"
    # The slowest tests are listed at the end: where a run's time goes.
    context.run(f"{python} -m pytest --durations=15{selection}", echo=True, pty=False)


ns.add_task(test)
