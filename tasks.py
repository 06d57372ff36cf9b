"""This repository's tasks for `inv`: djdeploy's own, as any project gets them, and `test`, its checks."""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.tasks import task

from djdeploy.tasks import namespace as ns

# Shell that djdeploy ships and runs: on hosts (the supervisor, the lab's stage 2) and to install it.
SHELL_SCRIPTS = ("djdeploy/deploy/supervisor.sh", "nix/lab/stage-2.sh", "scripts/install.sh")


@task(help={"lab": "also run the end-to-end tests on lab hosts (needs root; default true)"})
def test(context: Context, lab: bool = True) -> None:  # noqa: PT028 (an Invoke task, not a pytest test)
    """Run ruff, mypy and the test suite (lab tests included when run as root)."""
    python = sys.executable
    context.run(f"{python} -m ruff check .", echo=True)
    context.run(f"{python} -m ruff format --check .", echo=True)
    context.run(f"{python} -m mypy", echo=True)
    context.run(f"shellcheck {' '.join(SHELL_SCRIPTS)}", echo=True)
    selection = "" if lab else " -m 'not lab'"
    context.run(f"{python} -m pytest{selection}", echo=True, pty=False)


ns.add_task(test)
