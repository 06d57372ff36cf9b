"""Terminal output through Rich, and turning user-facing errors into a message and exit code 1."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from rich.console import Console

from djdeploy.errors import DjdeployError

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(task_body: Callable[P, R]) -> Callable[P, R]:
    """Show a DjdeployError as one red paragraph and exit 1, without a traceback."""

    @functools.wraps(task_body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task_body(*args, **kwargs)
        except DjdeployError as exc:
            from invoke.exceptions import Exit
            from rich.panel import Panel

            error_console.print(Panel(exc.message, title="error", title_align="left", border_style="red"))
            raise Exit(code=1) from exc

    return wrapper
