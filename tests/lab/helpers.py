"""Helpers for end-to-end tests that drive the lab through the real `inv` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
