"""What every task shares: how it is declared, finding the inventory, picking hosts, connecting."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from djdeploy import inventory
from djdeploy.errors import DjdeployError
from djdeploy.remote.ssh import Remote

if TYPE_CHECKING:
    from invoke.parser.argument import Argument
    from invoke.tasks import Task


class DjdeployTask:
    """A task: its body and what Invoke's @task is given for it. Invoke's Task is made when first asked for
    (by the collection, `inv`, help), so the tasks import without Invoke and the djdeploy program runs a plain
    command line without it (djdeploy/cli.py). Called, it runs its body."""

    def __init__(
        self,
        body: Callable[..., None],
        help: dict[str, str] | None = None,
        positional: list[str] | None = None,
    ) -> None:
        self.body = body
        self.help = help or {}
        self.positional = positional
        functools.update_wrapper(self, body)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.body(*args, **kwargs)

    @functools.cached_property
    def invoke_task(self) -> Task[Any]:
        from invoke.tasks import Task

        return Task(self.body, help=self.help, positional=self.positional)


@overload
def task(body: Callable[..., None]) -> DjdeployTask: ...


@overload
def task(
    *, help: dict[str, str] | None = None, positional: list[str] | None = None
) -> Callable[[Callable[..., None]], DjdeployTask]: ...


def task(
    body: Callable[..., None] | None = None,
    *,
    help: dict[str, str] | None = None,
    positional: list[str] | None = None,
) -> DjdeployTask | Callable[[Callable[..., None]], DjdeployTask]:
    """Declare a task as Invoke's @task does (`@task` or `@task(help=..., positional=...)`)."""

    def declare(body: Callable[..., None]) -> DjdeployTask:
        return DjdeployTask(body, help, positional)

    return declare(body) if body is not None else declare


def exit_with(code: int) -> BaseException:
    """What a task raises to end the program with this exit status (Invoke's Exit)."""
    from invoke.exceptions import Exit

    return Exit(code=code)


INVENTORY_ENV = "DJDEPLOY_INVENTORY"
SUDO_PASSWORD_ENV = "DJDEPLOY_SUDO_PASSWORD"
DEFAULT_INVENTORY = Path("inventory.yaml")
INVENTORY_HELP = f"inventory file (default: ${INVENTORY_ENV}, else ./{DEFAULT_INVENTORY})"
HOST_HELP = "host names from the inventory, comma-separated (default: all hosts)"
TAG_HELP = "only the hosts with this tag, e.g. --on @web"


def inventory_path(option: str | None) -> Path:
    """--inventory when given, else $DJDEPLOY_INVENTORY, else inventory.yaml in the working directory."""
    if option:
        return Path(option).expanduser()
    from_environment = os.environ.get(INVENTORY_ENV)
    if from_environment:
        return Path(from_environment).expanduser()
    return DEFAULT_INVENTORY


def load_inventory(option: str | None) -> inventory.Inventory:
    return inventory.load(inventory_path(option))


def select_hosts(inventory_option: str | None, names: str | None, tag: str | None) -> list[inventory.Host]:
    """The hosts named by --host or tagged as --on says (all hosts without either)."""
    if names and tag:
        raise DjdeployError("Give either --host or --on, not both.")
    return load_inventory(inventory_option).select(names, tag)


def one_host(inventory_option: str | None, name: str) -> inventory.Host:
    if not name or "," in name:
        raise DjdeployError(f"Name exactly one host of the inventory, not '{name}'.")
    return load_inventory(inventory_option).select(name)[0]


def sudo_password(hosts: Sequence[inventory.Host]) -> str | None:
    """The password for `ssh.sudo` hosts: $DJDEPLOY_SUDO_PASSWORD, else asked once on the terminal.

    None when no host needs sudo; empty when there is no terminal to ask on (passwordless sudo).
    """
    users = sorted({host.ssh.user for host in hosts if host.ssh.sudo})
    if not users:
        return None
    from_environment = os.environ.get(SUDO_PASSWORD_ENV)
    if from_environment is not None:
        return from_environment
    if not sys.stdin.isatty():
        return ""
    import getpass

    return getpass.getpass(f"sudo password of {', '.join(users)} on the hosts: ")


def connect(host: inventory.Host, sudo_password: str | None = None) -> Remote:
    """A connection to the host, opened by `with`."""
    return Remote(host.ssh_target, sudo_password)


def django_words_start(words: Sequence[str], manage: DjdeployTask) -> int | None:
    """Where the words for Django start in a command line that runs `manage [OPTIONS] HOST COMMAND WORDS...`.

    Finds the manage task by name (`manage`, or `x.manage` in a collection nested under x), steps over its own
    options (`--site x`, `--site=x`, `-sx`, before or between HOST and COMMAND) and returns the index of the
    first word after COMMAND, past a `--` right there (Invoke's end of options, kept for compatibility). None
    when the line has no manage task with both HOST and COMMAND, or has `--` before them: Invoke then reports
    what is missing.
    """
    from invoke.parser.context import to_flag

    arguments = manage.invoke_task.get_arguments()
    names = {manage.invoke_task.name, *manage.invoke_task.aliases}
    found = [index for index, word in enumerate(words) if word.rpartition(".")[2] in names]
    if not found:
        return None
    options = {to_flag(name): argument for argument in arguments for name in argument.names}
    unfilled = [argument.name for argument in arguments if argument.positional]
    index = found[0] + 1
    while index < len(words) and unfilled:
        word = words[index]
        index += 1
        if word == "--":
            return None
        option, value_follows = _option(word, options)
        if option is None:  # as Invoke does, any other word fills the next positional argument
            unfilled.pop(0)
            continue
        index += value_follows
        if option in unfilled:  # a positional argument given as an option: `--host prod`
            unfilled.remove(option)
    if unfilled:
        return None
    return index + 1 if words[index : index + 1] == ["--"] else index


def _option(word: str, options: dict[str, Argument]) -> tuple[str | None, bool]:
    """Which of the task's options a word gives (None: not one), and whether its value is the next word.

    `--site=x` and `-sx` hold their value, as Invoke reads them.
    """
    if not word.startswith("-"):
        return None, False
    if not word.startswith("--") and len(word) > 2 and word[:2] in options:
        return options[word[:2]].name, False
    flag, equals, _ = word.partition("=")
    argument = options.get(flag)
    if argument is None:
        return None, False
    return argument.name, argument.takes_value and not equals


def end_options_before_django_words(task_words: list[str], manage: DjdeployTask) -> None:
    """Insert `--` where Django's words start in the task words Invoke is about to parse (in place).

    Invoke would read `check --deploy` as its own --deploy flag; after `--` it leaves every word alone.
    Applying this twice changes nothing.
    """
    start = django_words_start(task_words, manage)
    if start is not None and start < len(task_words) and task_words[start - 1] != "--":
        task_words.insert(start, "--")


def django_words(manage: DjdeployTask, argv: Sequence[str] | None = None) -> list[str]:
    """The words for Django on the process' command line (sys.argv), exactly as the shell passed them.

    Read from the command line because Invoke keeps only a space-joined copy of the words after `--`, which
    loses the boundaries between arguments.
    """
    words = list(sys.argv if argv is None else argv)[1:]
    start = django_words_start(words, manage)
    return [] if start is None else words[start:]
