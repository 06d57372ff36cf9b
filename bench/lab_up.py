"""Wall time of `inv lab.up` for 1 and 4 hosts with a cold and a warm image, and memory of one host.

Run as root: python3 -m bench.lab_up [--cold]. --cold deletes the cached image first (one cold build is
timed with 1 host; a cold 4-host run pays the same image build, so it is timed too when --cold is given).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from djdeploy.lab import machine
from djdeploy.lab.layout import LabLayout


def inv(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "invoke", *args], check=True, capture_output=True)
    return time.monotonic() - started


def container_memory_mib(layout: LabLayout) -> float:
    """Proportional set size of every process inside lab1's PID namespace."""
    nspawn = machine.nspawn_pids(layout, layout.host(1))[0]
    children = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()
    namespace = os.readlink(f"/proc/{children[0]}/ns/pid")
    total_kib = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "ns" / "pid") != namespace:
                continue
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also time runs that build the image first")
    options = parser.parse_args()
    layout = LabLayout.from_environment()
    inv("lab.down")
    for count in (1, 4):
        if options.cold:
            shutil.rmtree(layout.cache_dir, ignore_errors=True)
            print(f"lab.up --hosts {count}, cold image: {inv('lab.up', '--hosts', str(count)):.1f} s")
            inv("lab.down")
        print(f"lab.up --hosts {count}, warm image: {inv('lab.up', '--hosts', str(count)):.1f} s")
        if count == 1:
            time.sleep(5)
            print(f"memory of one running host (PSS, idle): {container_memory_mib(layout):.0f} MiB")
        inv("lab.down")


if __name__ == "__main__":
    main()
