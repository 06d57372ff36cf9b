"""Time from `lab.up` to a served page of tests/lab/cookiecutter_project, rehearsed with `lab.rehearse`.

Three kinds of run, each from a lab that is down: cold (an empty wheel cache: every wheel is downloaded),
warm (a wheel cache that holds the wheels: the same builds run without the network) and built (the store has
every path already: nothing is built). Each round gives the cold and warm runs wheel caches of their own
(DJDEPLOY_LAB_WHEELS), so that their builds are new ones. Prints each round, then the median and the spread.

Run as root, with the lab instance's variables set: python3 -m bench.own_project [--rounds N].
"""

from __future__ import annotations

import argparse
import grp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.backup import spread
from djdeploy.lab.layout import WHEEL_CACHE_ENV, LabLayout
from djdeploy.remote import probe

PROJECT = Path(__file__).resolve().parents[1] / "tests" / "lab" / "cookiecutter_project"
KINDS = ("cold", "warm", "built")


def inv(wheel_cache: Path, *args: str) -> None:
    environment = {**os.environ, WHEEL_CACHE_ENV: str(wheel_cache)}
    subprocess.run([sys.executable, "-m", "invoke", *args], check=True, capture_output=True, env=environment)


def wheel_cache(parent: Path, holding: Path | None = None) -> Path:
    """A new wheel cache that the build users can write to, empty or with the wheels of holding."""
    directory = Path(tempfile.mkdtemp(dir=parent, prefix="wheels-"))
    os.chown(directory, 0, grp.getgrnam("nixbld").gr_gid)
    directory.chmod(0o2775)
    for wheel in holding.glob("*.whl") if holding else ():
        shutil.copy2(wheel, directory)
    return directory


def up_to_served_page(layout: LabLayout, wheels: Path) -> float:
    """Seconds from `lab.up` to the project's home page answering 200, then the lab goes down."""
    started = time.monotonic()
    inv(wheels, "lab.up")
    inv(wheels, "lab.rehearse", "--file", str(PROJECT / "lab.yaml"))
    response = probe.request(layout.host(1).address, "shop.lab", "/", verify=False)
    seconds = time.monotonic() - started
    inv(wheels, "lab.down")
    if response.status != 200:
        raise SystemExit(f"https://shop.lab/ answered {response.status} after lab.rehearse")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    layout = LabLayout.from_environment()
    inv(layout.wheel_cache, "lab.down")
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="djdeploy-bench-wheels-") as parent:
        Path(parent).chmod(0o755)
        for round_number in range(1, options.rounds + 1):
            cold = wheel_cache(Path(parent))
            times["cold"].append(up_to_served_page(layout, cold))
            warm = wheel_cache(Path(parent), holding=cold)
            times["warm"].append(up_to_served_page(layout, warm))
            times["built"].append(up_to_served_page(layout, warm))
            print(f"round {round_number}: " + ", ".join(f"{kind} {times[kind][-1]:.1f} s" for kind in KINDS))
    for kind in KINDS:
        print(f"lab.up to a served page, {kind}: {spread(times[kind])} over {options.rounds} rounds")


if __name__ == "__main__":
    main()
