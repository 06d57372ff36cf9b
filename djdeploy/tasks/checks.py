"""The project's own checks: lint, types and tests."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task


@task(help={"lab": "also run the end-to-end tests on lab hosts (needs root; default true)"})
def test(context: Context, lab: bool = True) -> None:
    """Run ruff, mypy and the test suite (lab tests included when run as root)."""
    context.run("ruff check .", echo=True)
    context.run("ruff format --check .", echo=True)
    context.run("mypy", echo=True)
    selection = "" if lab else " -m 'not lab'"
    context.run(f"python3 -m pytest{selection}", echo=True, pty=False)
