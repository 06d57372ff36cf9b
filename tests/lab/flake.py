"""The lab flake (nix/lab/flake.nix) as tests refer to it: from the repository's own git tree."""

from __future__ import annotations

import subprocess

from tests.lab.helpers import REPO

LAB_FLAKE = REPO / "nix" / "lab"
# What the lab's systems are built from, all inside the flake's source: the repository's git tree.
SOURCES = ("nix", "example")


def lab_flake_reference(host: str) -> str:
    """`<lab flake>#nixosConfigurations.<host>`, once every file the lab systems may need is one Nix sees.

    Nix copies only the tracked files of a git flake (modified ones as they are in the work tree): a new
    file not yet added is missing from the flake, though a file build finds it. Say so, rather than let Nix
    fail on a path in the store."""
    untracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard", "--", *SOURCES],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not untracked, (
        f"The lab flake cannot see untracked files: {', '.join(untracked)}. "
        "Add them to git (`git add --intent-to-add` is enough) and run the tests again."
    )
    return f"{LAB_FLAKE}#nixosConfigurations.{host}"
