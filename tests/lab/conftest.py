"""Fixtures of the lab tests: a module's lab hosts and its working directory, shared by the module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from djdeploy.lab.layout import LabLayout
from tests.lab.helpers import lab_hosts, write_inventory
from tests.lab.test_deploy import deploy


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[LabLayout]:
    """lab1..labN up, booted by `inv lab.up`, for the module's tests (N: the module's LAB_HOSTS, by default
    1); the lab goes down after them."""
    with lab_hosts(getattr(request.module, "LAB_HOSTS", 1)) as layout:
        yield layout


@pytest.fixture(scope="module")
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of the module's own, for the inventories and project copies its tests write."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))


@pytest.fixture(scope="module")
def first(lab: LabLayout, workspace: Path) -> Path:
    """lab1 with release 1.0.0 deployed by `inv deploy`: the module's inventory."""
    path = write_inventory(lab, workspace, "release-one")
    result = deploy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    return path
