"""Backups of a site database of about 100 MB on a lab host: dump, download and restore times, dump size.

Run as root: python3 -m bench.backup [--rounds N] [--megabytes M]. Boots lab1 with the example site deployed,
fills its notes table with M MB of text (half of it repeated, half random, so the dump's compression has
work of both kinds), then runs, N times each, what `djdeploy db.backup`, `db.pull` and `db.restore` run
(djdeploy.ops.db over one SSH connection) and prints the median, the lowest and the highest of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from djdeploy.host import sites
from djdeploy.ops import db
from djdeploy.remote.ssh import Remote
from tests.lab.deployed import deployed_lab

# One row's body: 5 kB of text, half random hex, half a repeated phrase.
FILL = """
INSERT INTO notes_note (title, body, created_at)
SELECT 'bench ' || n,
       (SELECT string_agg(md5(random()::text || n || k), '') FROM generate_series(1, 80) AS k)
       || repeat('the same words again ', 120),
       now()
FROM generate_series(1, {rows}) AS n;
"""


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (lowest {min(values):.2f}, highest {max(values):.2f})"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each step (default 3)")
    parser.add_argument("--megabytes", type=int, default=100, help="table data to fill (default 100)")
    options = parser.parse_args()
    with deployed_lab(1) as lab, Remote(lab.hosts["lab1"].ssh_target) as remote:
        [site] = sites.read(remote)
        # About 3.2 kB a row on disk: PostgreSQL compresses the repeated half.
        rows = options.megabytes * 310
        remote.run(
            ["runuser", "-u", "postgres", "--", "psql", "-q", "-d", "example", "-c", FILL.format(rows=rows)],
            timeout=1800,
        )
        table = remote.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-XAt",
                "-d",
                "example",
                "-c",
                "SELECT pg_total_relation_size('notes_note')",
            ],
        ).stdout.strip()
        print(f"notes table on lab1: {int(table) / 1e6:.0f} MB in {rows} rows")
        backups: list[float] = []
        made: list[db.Backup] = []
        for _ in range(options.rounds):
            backups.append(timed(lambda: made.append(db.backup(remote, site, "manual"))))
        print(f"db.backup: {spread(backups)}; dump size {made[-1].size / 1e6:.1f} MB")
        with tempfile.TemporaryDirectory() as directory:
            pulls = [
                timed(
                    lambda: db.download(remote, site, made[-1], Path(directory) / "dump", lambda count: None)
                )
                for _ in range(options.rounds)
            ]
        print(f"db.pull of that dump over SSH: {spread(pulls)}")
        restores = [timed(lambda: db.restore(remote, site, made[-1])) for _ in range(options.rounds)]
        print(f"db.restore (gunicorn stopped, pg_restore --clean, started): {spread(restores)}")


if __name__ == "__main__":
    main()
