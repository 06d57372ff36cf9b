"""The project's own checks: lint, types and tests."""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.tasks import task


@task(help={"lab": "also run the end-to-end tests on lab hosts (needs root; default true)"})
def test(context: Context, lab: bool = True) -> None:
    """Run ruff, mypy and the test suite (lab tests included when run as root)."""
    python = sys.executable
    context.run(f"{python} -m ruff check .", echo=True)
    context.run(f"{python} -m ruff format --check .", echo=True)
    context.run(f"{python} -m mypy", echo=True)
    selection = "" if lab else " -m 'not lab'"
    context.run(f"{python} -m pytest{selection}", echo=True, pty=False)
