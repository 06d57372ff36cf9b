"""djdeploy's Invoke collection, the tasks users run: those of the `djdeploy` command and of `inv`.

A project's tasks.py that wants them under `inv`:

    from djdeploy.tasks import namespace as ns
    ns.add_task(my_task)  # optional: the project's own tasks beside djdeploy's

The collection (and Invoke with it) is made when first asked for: the djdeploy program runs a plain command
line without it (djdeploy/cli.py).
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from djdeploy.tasks.common import DjdeployTask, end_options_before_django_words

if TYPE_CHECKING:
    from invoke.collection import Collection


def __getattr__(name: str) -> Collection:
    if name == "namespace":
        return _namespace()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _namespace() -> Collection:
    from invoke.collection import Collection

    from djdeploy.tasks import db, deploy, lab, ops

    namespace = Collection()
    top_level = (deploy.deploy, deploy.rollback, deploy.unlock, ops.manage, ops.status, ops.logs, ops.verify)
    for declared in top_level:
        namespace.add_task(declared.invoke_task)
    namespace.add_collection(_collection_of(db, "db"))
    namespace.add_collection(_collection_of(lab, "lab"))
    _end_options_in_running_inv(ops.manage)
    return namespace


def _collection_of(module: ModuleType, name: str) -> Collection:
    """The tasks a module declares, as a collection of that name (as Invoke's Collection.from_module)."""
    from invoke.collection import Collection

    collection = Collection(name)
    for value in vars(module).values():
        if isinstance(value, DjdeployTask) and value.__module__ == module.__name__:
            collection.add_task(value.invoke_task)
    return collection


def _end_options_in_running_inv(manage: DjdeployTask) -> None:
    """Let Django's words after `inv manage HOST COMMAND` through to the manage task.

    `inv` (the program invoke.main.program) imports tasks.py, and with it this collection, after it has set
    its own options aside and before it parses the task words left in `core.unparsed`. That import is the
    only moment djdeploy's code runs in between: `inv` is Invoke's program, which djdeploy cannot extend as
    it does its own (djdeploy/cli.py), and a project's tasks.py only names the collection.
    """
    running = getattr(sys.modules.get("invoke.main"), "program", None)
    core = getattr(running, "core", None)
    if core is not None:
        end_options_before_django_words(core.unparsed, manage)
