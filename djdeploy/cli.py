"""The `djdeploy` command: djdeploy's tasks as a program of their own, run from a project's directory."""

from __future__ import annotations

from invoke.program import Program

from djdeploy.tasks import namespace, ops
from djdeploy.tasks.common import end_options_before_django_words


class Djdeploy(Program):
    """Invoke's program over djdeploy's collection (as Fabric's `fab` is), with Django's words kept whole."""

    def print_version(self) -> None:
        # Read from the installed package only when asked: importlib.metadata costs start-up time.
        from importlib.metadata import version

        self.version = version("djdeploy")
        super().print_version()

    def parse_tasks(self) -> None:
        # In `manage HOST COMMAND --flag` the flag is Django's: Invoke must not parse it as djdeploy's.
        end_options_before_django_words(self.core.unparsed, ops.manage)
        super().parse_tasks()


program = Djdeploy(
    name="djdeploy",
    binary="djdeploy",
    binary_names=["djdeploy"],
    namespace=namespace,
)
