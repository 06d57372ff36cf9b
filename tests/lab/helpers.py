"""Helpers for end-to-end tests that drive the lab through the real `inv` command line."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from djdeploy.lab.layout import LabLayout

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = REPO / "tests" / "lab" / "systems.nix"


def inv(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `inv ARGS` from the repository root, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"inv {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


LAB_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def build(expression: Path, **arguments: str) -> Path:
    """nix-build a test expression with string arguments."""
    argv = ["nix-build", str(expression), "--no-out-link", "--option", "substituters", ""]
    for name, value in arguments.items():
        argv += ["--argstr", name, value]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"nix-build {expression} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip())


@contextlib.contextmanager
def lab_hosts(count: int, *, cache: bool = False) -> Iterator[LabLayout]:
    """lab1..lab<count> up for the block, booted by `inv lab.up` (with its binary cache when asked); the
    lab goes down afterwards."""
    inv("lab.up", "--hosts", str(count), *(["--cache"] if cache else []))
    try:
        yield LabLayout.from_environment()
    finally:
        inv("lab.down")


def write_inventory(lab: LabLayout, workspace: Path, name: str, number: int = 1, **system: str) -> Path:
    """An inventory whose lab<number> runs the test system with the given arguments."""
    arguments = {"withGuardedSite": '"false"', **system}
    expression = workspace / f"{name}.nix"
    expression.write_text(
        f"import {SYSTEMS} {{ " + " ".join(f"{key} = {value};" for key, value in arguments.items()) + " }\n"
    )
    lab_inventory = yaml.safe_load(lab.inventory.read_text())
    lab_inventory["defaults"]["timeouts"] = {"health": 10, "confirm": 10}
    lab_inventory["hosts"] = {
        f"lab{number}": {"address": lab.host(number).address, "build": {"file": str(expression)}},
    }
    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(lab_inventory))
    return path
