"""Bytes a deploy copies for a one-line change of a view (no static file changed), and of a static file.

Run as root: python3 -m bench.change_bytes [--rounds N]. Needs no lab host: it builds lab1's system for the
example site and for changed copies of it, and sums the NAR sizes (`nix path-info`) of the paths the changed
system's closure holds that the first one's lacks, which is what a host running the first system is sent.
Prints each round, and the median and range of the bytes over the rounds (target for a view change:
under 1 MB).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from djdeploy.deploy import nix
from djdeploy.remote import process

REPO = Path(__file__).resolve().parents[1]
VIEW = Path("example_site/views.py")
STYLE = Path("example_site/static/example_site/site.css")


def system_of(directory: Path, name: str, change: Callable[[Path], None]) -> Path:
    """lab1's system for a copy of the example changed by change (given the copy's directory)."""
    source = directory / f"example-{name}"
    shutil.copytree(REPO / "example", source, ignore=shutil.ignore_patterns("__pycache__"))
    change(source)
    systems = directory / f"{name}.nix"
    systems.write_text(f"import {REPO}/nix/lab/hosts.nix {{ exampleSource = {source}; }}\n")
    return Path(process.output(["nix-build", str(systems), "-A", "lab1", "--no-out-link"]))


def append(relative: Path, line: str) -> Callable[[Path], None]:
    def change(source: Path) -> None:
        with (source / relative).open("a") as changed:
            changed.write(line + "\n")

    return change


def missing_bytes(before: Path, after: Path) -> tuple[int, list[nix.StorePath]]:
    """What a host running before lacks of after's closure: the bytes, and the paths (largest first)."""
    had = {entry.path for entry in nix.closure(before)}
    new = sorted(
        (entry for entry in nix.closure(after) if entry.path not in had), key=lambda entry: -entry.nar_size
    )
    return sum(entry.nar_size for entry in new), new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="changes of each kind (default 3)")
    rounds = parser.parse_args().rounds
    token = str(int(time.time()))
    figures: dict[str, list[int]] = {"view": [], "static file": []}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        before = system_of(directory, f"base-{token}", append(VIEW, f"# {token}"))
        for number in range(1, rounds + 1):
            changes = {
                "view": append(VIEW, f"# {token} view change {number}"),
                "static file": append(STYLE, f"/* {token} style change {number} */"),
            }
            for kind, change in changes.items():
                after = system_of(directory, f"{kind.replace(' ', '-')}-{number}-{token}", change)
                count, paths = missing_bytes(before, after)
                figures[kind].append(count)
                largest = ", ".join(f"{entry.name} {entry.nar_size / 1e3:.0f} kB" for entry in paths[:3])
                print(f"{kind} change #{number}: {count / 1e6:.3f} MB in {len(paths)} paths ({largest})")
    for kind, counts in figures.items():
        print(
            f"{kind} change: median {statistics.median(counts) / 1e6:.3f} MB (min {min(counts) / 1e6:.3f}, "
            f"max {max(counts) / 1e6:.3f}, {len(counts)} rounds)"
        )


if __name__ == "__main__":
    main()
