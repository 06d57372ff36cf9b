"""djdeploy's Invoke collection, the tasks users run: those of the `djdeploy` command and of `inv`.

A project's tasks.py that wants them under `inv`:

    from djdeploy.tasks import namespace as ns
    ns.add_task(my_task)  # optional: the project's own tasks beside djdeploy's
"""

import sys

from invoke.collection import Collection

from djdeploy.tasks import db, deploy, lab, ops
from djdeploy.tasks.common import end_options_before_django_words

namespace = Collection()
namespace.add_task(deploy.deploy)
namespace.add_task(deploy.rollback)
namespace.add_task(deploy.unlock)
namespace.add_task(ops.manage)
namespace.add_task(ops.status)
namespace.add_task(ops.logs)
namespace.add_task(ops.verify)
namespace.add_collection(Collection.from_module(db, name="db"))
namespace.add_collection(Collection.from_module(lab, name="lab"))


def _end_options_in_running_inv() -> None:
    """Let Django's words after `inv manage HOST COMMAND` through to the manage task.

    `inv` (the program invoke.main.program) imports tasks.py, and with it this collection, after it has set
    its own options aside and before it parses the task words left in `core.unparsed`. That import is the
    only moment djdeploy's code runs in between: `inv` is Invoke's program, which djdeploy cannot extend as
    it does its own (djdeploy/cli.py), and a project's tasks.py only names the collection.
    """
    running = getattr(sys.modules.get("invoke.main"), "program", None)
    core = getattr(running, "core", None)
    if core is not None:
        end_options_before_django_words(core.unparsed, ops.manage)


_end_options_in_running_inv()
