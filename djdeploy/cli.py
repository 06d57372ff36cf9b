"""The `djdeploy` command: djdeploy's tasks as a program of their own, run from a project's directory.

Invoke's program (as Fabric's `fab` is) reads every command line but the plainest: a task whose arguments
all have defaults, given as `--name value`, `--name=value` or `--flag`, runs at once, without importing
Invoke (about 0.08 s of start-up). Anything else (help, --list, a positional argument, a collection's task,
an option the task lacks) goes to Invoke, which reads it, or says what is wrong with it, as ever.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from djdeploy.tasks.common import DjdeployTask

if TYPE_CHECKING:
    from invoke.program import Program

# The tasks a plain command line runs without Invoke, and the module that declares each.
PLAIN_TASKS = {
    "deploy": "djdeploy.tasks.deploy",
    "status": "djdeploy.tasks.ops",
    "verify": "djdeploy.tasks.ops",
}


def plain_arguments(words: Sequence[str]) -> tuple[DjdeployTask, dict[str, Any]] | None:
    """The task and its arguments, as Invoke would parse them, of a plain command line; None otherwise."""
    if not words or words[0] not in PLAIN_TASKS:
        return None
    declared = getattr(importlib.import_module(PLAIN_TASKS[words[0]]), words[0])
    assert isinstance(declared, DjdeployTask)
    parameters = list(inspect.signature(declared.body).parameters.values())[1:]  # after the context
    if declared.positional or any(parameter.default is inspect.Parameter.empty for parameter in parameters):
        return None
    by_flag = {f"--{parameter.name.replace('_', '-')}": parameter for parameter in parameters}
    arguments: dict[str, Any] = {}
    rest = list(words[1:])
    while rest:
        flag, equals, value = rest.pop(0).partition("=")
        parameter = by_flag.get(flag)
        if parameter is None or parameter.name in arguments:
            return None
        default = parameter.default
        if isinstance(default, bool):
            if equals or default:  # Invoke's --no-flag and flag=value: its own reading
                return None
            arguments[parameter.name] = True
            continue
        if not equals:
            if not rest or rest[0].startswith("-"):
                return None
            value = rest.pop(0)
        try:
            arguments[parameter.name] = type(default)(value) if isinstance(default, int | float) else value
        except ValueError:
            return None
    return declared, arguments


class DjdeployProgram:
    """The program `djdeploy` runs (its entry point is `run`)."""

    def run(self, argv: Sequence[str] | None = None, exit: bool = True) -> None:
        """Run the command line (sys.argv without argv) as Invoke's Program.run does, exit status included."""
        words = list(sys.argv if argv is None else argv)
        plain = plain_arguments(words[1:])
        if plain is None:
            invoke_program().run(words, exit)
            return
        declared, arguments = plain
        _run_as_invoke_does(lambda: declared.body(None, **arguments), exit)


def _run_as_invoke_does(body: Callable[[], None], exit: bool) -> None:
    """Run a task's body, ending as Invoke's program ends on what it raises."""
    try:
        body()
    except KeyboardInterrupt:
        sys.exit(1)
    except Exception as exc:
        # Tasks end with Invoke's Exit, imported only by the task that raises it.
        exit_type = getattr(sys.modules.get("invoke.exceptions"), "Exit", None)
        if exit_type is None or not isinstance(exc, exit_type):
            raise
        if exc.message:
            print(exc.message, file=sys.stderr)
        if exit:
            sys.exit(exc.code)


@functools.cache
def invoke_program() -> Program:
    """Invoke's program over djdeploy's collection, with Django's words kept whole."""
    from invoke.program import Program

    from djdeploy.tasks import namespace, ops
    from djdeploy.tasks.common import end_options_before_django_words

    class Djdeploy(Program):
        def print_version(self) -> None:
            # Read from the installed package only when asked: importlib.metadata costs start-up time.
            from importlib.metadata import version

            self.version = version("djdeploy")
            super().print_version()

        def parse_tasks(self) -> None:
            # In `manage HOST COMMAND --flag` the flag is Django's: Invoke must not parse it as djdeploy's.
            end_options_before_django_words(self.core.unparsed, ops.manage)
            super().parse_tasks()

    return Djdeploy(name="djdeploy", binary="djdeploy", binary_names=["djdeploy"], namespace=namespace)


program = DjdeployProgram()
