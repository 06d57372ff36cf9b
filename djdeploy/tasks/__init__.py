"""djdeploy's Invoke collection: `tasks.py` at the repository root exposes it."""

from invoke.collection import Collection

from djdeploy.tasks import checks, lab

namespace = Collection()
namespace.add_task(checks.test)
namespace.add_collection(Collection.from_module(lab, name="lab"))
