"""The fault drills on a lab host: after each, the host runs a working generation and serves, the deploy's
exit code says whether the new release runs, the lock is free and the deploy log has one line per deploy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.drills.drills import DRILLS
from tests.drills.harness import Lab
from tests.lab.helpers import lab_hosts

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_hosts(3) as layout:
        yield Lab(layout, tmp_path_factory.mktemp("drills"))


@pytest.mark.parametrize("name", DRILLS)
def test_drill(lab: Lab, name: str) -> None:
    lab.back_to_baseline()
    row = DRILLS[name](lab)
    assert row.verdict == "pass", row
