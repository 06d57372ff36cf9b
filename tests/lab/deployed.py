"""Lab hosts with the example site deployed by `inv deploy`, for end-to-end tests of the tasks that work on
deployed hosts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from djdeploy import inventory
from tests.lab.helpers import inv, lab_hosts


@contextlib.contextmanager
def deployed_lab(count: int) -> Iterator[inventory.Inventory]:
    """lab1..lab<count> up with the example site deployed; the lab goes down afterwards."""
    with lab_hosts(count) as layout:
        inv("deploy", "--inventory", str(layout.inventory))
        yield inventory.load(layout.inventory)
