"""Wall time of `inv lab.rehearse` for a project on Python 3.13 (tests/lab/python313_project) on one Debian
13 lab host, from nothing running to a served page, in three states:

- cold wheels: its dependencies built anew and the wheels only Python 3.13 uses (and Django 6's) removed
  from the wheel cache first, so that they are downloaded;
- warm wheels: its dependencies built anew from the wheel cache;
- warm: nothing to build, only boot and deploy.

Run as root with the lab's environment: python3 -m bench.rehearse_python [--rounds N]. The Debian 13 image
is built first when missing (timed apart). Prints the median and spread of each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from djdeploy.lab import image
from djdeploy.lab.layout import LabLayout

PROJECT = Path(__file__).resolve().parents[1] / "tests" / "lab" / "python313_project"
# Wheels no Python 3.11 build uses: dropped for a cold round.
PYTHON_313_WHEELS = ("*-cp313-*.whl", "django-6.*.whl")


def inv(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "invoke", *args], check=True, capture_output=True)
    return time.monotonic() - started


def rehearse(project: Path, round_name: str | None) -> float:
    """One rehearsal; round_name, when given, makes its dependencies a new derivation."""
    if round_name is not None:
        pins = (PROJECT / "requirements.txt").read_text()
        (project / "requirements.txt").write_text(f"# {round_name}\n{pins}")
    # lab.rehearse returns once the deploy's health check got the home page from the host.
    seconds = inv("lab.rehearse", "--file", str(project / "lab.yaml"))
    inv("lab.down")
    return seconds


def report(name: str, samples: list[float]) -> None:
    spread = f"{min(samples):.1f}-{max(samples):.1f}"
    print(f"{name}: median {statistics.median(samples):.1f} s, spread {spread} s, {len(samples)} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    layout = LabLayout.from_environment()
    started = time.monotonic()
    image.ensure_image(layout, Console(stderr=True), image.DEBIAN_13)
    print(f"Debian 13 image ready in {time.monotonic() - started:.1f} s")
    inv("lab.down")
    with tempfile.TemporaryDirectory() as workspace:
        project = Path(workspace) / "clock"
        shutil.copytree(PROJECT, project)
        stamp = time.time_ns()
        cold, warm_wheels, warm = [], [], []
        for index in range(options.rounds):
            for pattern in PYTHON_313_WHEELS:
                for wheel in LabLayout.from_environment().wheel_cache.glob(pattern):
                    wheel.unlink()
            cold.append(rehearse(project, f"cold {stamp} {index}"))
            warm_wheels.append(rehearse(project, f"warm wheels {stamp} {index}"))
            warm.append(rehearse(project, None))
    report("cold wheels", cold)
    report("warm wheels", warm_wheels)
    report("warm", warm)


if __name__ == "__main__":
    main()
