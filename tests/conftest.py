"""Shared fixtures: lab tests need root and systemd-nspawn, and skip with the reason otherwise."""

from __future__ import annotations

import os
import shutil

import pytest


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (they boot systemd-nspawn containers)"
    for tool in ("systemd-nspawn", "debootstrap", "nix-build", "ip"):
        if shutil.which(tool) is None:
            return f"lab tests need {tool}; .ci/run installs it"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable_reason()
    if reason is None:
        return
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
