"""The fault drills' table: run as root, python3 -m bench.drills [DRILL...]. It brings up lab1 to lab3 (of
DJDEPLOY_LAB_INSTANCE; the fleet drill uses all three), runs each drill of tests/drills from the same
baseline, prints one row per drill (host generation after, the release it serves, the deploy's exit code and
last words, the lock, the deploy-log lines it added and their outcome, the verdict) and takes the lab down."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tests.drills.drills import DRILLS
from tests.drills.harness import Lab, Row
from tests.lab.helpers import lab_hosts


def main(names: list[str]) -> int:
    chosen = names or list(DRILLS)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory, lab_hosts(3) as layout:
        lab = Lab(layout, Path(directory))
        for name in chosen:
            try:
                lab.back_to_baseline()
                rows.append(DRILLS[name](lab))
            except (AssertionError, OSError, subprocess.SubprocessError) as exc:  # the drill could not run
                rows.append(Row(name, "?", "?", "?", "?", "?", (f"the drill broke: {exc!r}",)))
    table = Table("drill", "generation", "serving", "exit code and message", "lock", "log lines", "verdict")
    for row in rows:
        cells = (row.drill, row.generation, row.serving, row.exit, row.lock, row.log, row.verdict)
        table.add_row(*(Text(cell) for cell in cells))  # as printed: no Rich markup in a deploy's words
    Console(width=220).print(table)
    return 0 if all(row.verdict == "pass" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
