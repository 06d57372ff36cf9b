"""Start-up of `djdeploy deploy`: the time from starting the command to its first Nix command.

Run as any user: python3 -m bench.startup [--runs N]. Runs `djdeploy deploy` beside this Python N times
(default 21) against a host nobody listens for, with stand-in `nix` commands first on PATH that write the
moment they start and fail (so nothing builds), and prints the median and the range of that time, with the
same for a bare Python that starts the same stand-in. Needs no lab and no Nix. The commands may write
Python's bytecode caches (as an installed package has them), and a first run of each, untimed, writes them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NIX_COMMANDS = ("nix", "nix-instantiate", "nix-store", "nix-build")
# Stands in for a Nix command: the moment it started, then a failure, so the deploy stops there.
STAND_IN = '#!/bin/sh\ndate +%s.%N >> "$STARTUP_MARK"\nexit 1\n'
INVENTORY = """\
hosts:
  nobody:
    address: 127.0.0.1
    ssh: {port: 9, connect_timeout: 1}
    build: {file: system.nix, attribute: nobody}
"""
BARE = "import subprocess; subprocess.run(['nix', '--version'])"


def first_command_seconds(argv: list[str], directory: Path) -> float:
    """Seconds from starting argv to the first stand-in Nix command it ran."""
    mark = directory / "mark"
    mark.unlink(missing_ok=True)
    environment = {**os.environ, "PATH": f"{directory}:{os.environ['PATH']}", "STARTUP_MARK": str(mark)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.time()
    subprocess.run(argv, cwd=directory, env=environment, capture_output=True, timeout=60, check=False)
    return float(mark.read_text().split()[0]) - started


def describe(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values):.3f} s "
        f"(lowest {min(values):.3f}, highest {max(values):.3f}, {len(values)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    djdeploy = str(Path(sys.executable).with_name("djdeploy"))
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for command in NIX_COMMANDS:
            (directory / command).write_text(STAND_IN)
            (directory / command).chmod(0o755)
        (directory / "inventory.yaml").write_text(INVENTORY)
        deploy = [djdeploy, "deploy", "--inventory", "inventory.yaml"]
        bare = [sys.executable, "-c", BARE]
        # In turn, so that other work on the machine weighs on both alike.
        measured: dict[str, list[float]] = {"djdeploy deploy": [], "bare python": []}
        first_command_seconds(deploy, directory)
        first_command_seconds(bare, directory)
        for _ in range(runs):
            measured["djdeploy deploy"].append(first_command_seconds(deploy, directory))
            measured["bare python"].append(first_command_seconds(bare, directory))
    print("Time from start to the first Nix command:")
    for label, values in measured.items():
        print(f"  {describe(label, values)}")


if __name__ == "__main__":
    main()
