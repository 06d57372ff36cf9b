"""Failed HTTPS requests during a deploy, gunicorn's stopIfChanged at NixOS's default and at the module's.

Run as root: python3 -m bench.stop_if_changed [--rounds N]. Boots lab1 and, for each setting, deploys N
changed releases of the example site under the steady load of bench.deploy, printing the failed requests of
each round, their median and their spread (lowest to highest). NixOS's default (true) stops gunicorn's
socket with it during the switch; the module's setting (false) restarts gunicorn alone behind its socket.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path

from bench.deploy import failed_requests_during
from djdeploy.lab.layout import LabLayout
from tests.lab.helpers import lab_hosts, write_inventory
from tests.lab.test_deploy import deploy, lab1, release_source

SETTINGS = ("nixos-default", "module")


def deploy_under_load(layout: LabLayout, workspace: Path, release: str, setting: str) -> tuple[int, int]:
    path = write_inventory(
        layout,
        workspace,
        f"{release}-{setting}",
        exampleSource=str(release_source(workspace, release)),
        gunicornStopIfChanged=f'"{setting}"',
    )
    results: list[subprocess.CompletedProcess[str]] = []
    counts = failed_requests_during(lab1(path), threading.Thread(target=lambda: results.append(deploy(path))))
    if results[0].returncode != 0:
        raise SystemExit(f"deploy failed:\n{results[0].stdout}{results[0].stderr}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    with lab_hosts(1) as layout, tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch)
        for setting in SETTINGS:
            # The switch to this setting itself is not measured: the new unit's flag decides that one.
            deploy_under_load(layout, workspace, f"{setting}-0", setting)
            failed = []
            for round_number in range(1, rounds + 1):
                count, total = deploy_under_load(layout, workspace, f"{setting}-{round_number}", setting)
                failed.append(count)
                print(f"stopIfChanged {setting}, round {round_number}: {count} of {total} requests failed")
            print(
                f"stopIfChanged {setting}: median {statistics.median(failed)} failed requests per deploy, "
                f"spread {min(failed)} to {max(failed)}, {rounds} rounds"
            )


if __name__ == "__main__":
    main()
