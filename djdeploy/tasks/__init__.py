"""djdeploy's Invoke collection: `tasks.py` at the repository root exposes it."""

from invoke.collection import Collection

from djdeploy.tasks import checks, deploy, lab, ops

namespace = Collection()
namespace.add_task(checks.test)
namespace.add_task(deploy.deploy)
namespace.add_task(deploy.rollback)
namespace.add_task(deploy.unlock)
namespace.add_task(ops.manage)
namespace.add_task(ops.status)
namespace.add_task(ops.logs)
namespace.add_task(ops.verify)
namespace.add_collection(Collection.from_module(lab, name="lab"))
