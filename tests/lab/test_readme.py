"""Every command of the README runs: its set-up, the lab rehearsal, and the tasks.py a user writes.

Fenced blocks say what they are in their info string: `sh setup` (the two set-up commands), `sh run` (run in
order in one shell, in this repository as the README's reader) and `python tasks.py` (a user's tasks.py, tried
in a project directory of its own).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^ *```([^\n`]*)\n(.*?)^ *```", re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    return [body for info, body in FENCE.findall(readme) if info.strip() == kind]


def commands(block: str) -> list[str]:
    """The block's commands, without comments; a line ending in a backslash goes on on the next."""
    joined = block.replace("\\\n", " ")
    lines = (line.split(" #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def setup_commands() -> list[str]:
    (block,) = blocks("sh setup")
    return commands(block)


def test_readme_names_two_set_up_commands_and_ci_runs_the_second() -> None:
    main_job, tests = setup_commands()
    assert main_job == "scripts/install.sh && inv lab.demo"
    ci_lines = commands((REPO / ".ci" / "run").read_text())
    assert ci_lines[-1] == tests, "CI must run the README's test command"
    assert "bash scripts/install.sh" in ci_lines


def test_readme_has_runnable_blocks() -> None:
    assert blocks("sh run"), "the README shows no runnable commands"
    assert len(blocks("python tasks.py")) == 1


def environment() -> dict[str, str]:
    """The user's environment: the default lab, a wide terminal so that no message wraps."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJDEPLOY_")}
    bin_dir = str(Path(sys.executable).parent)
    return {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}", "COLUMNS": "200"}


def bash(script: str, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def must(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, f"{what} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.lab
def test_readme_commands_run_on_the_lab(tmp_path: Path) -> None:
    main_job, _ = setup_commands()
    project = tmp_path / "project"
    project.mkdir()
    try:
        demo = must(bash(main_job, REPO), main_job)
        assert "The example site runs on lab1" in demo
        script = "\n".join(command for block in blocks("sh run") for command in commands(block))
        output = must(bash(script, REPO), "the README's runnable commands")
        assert "Deployed" in output or "Nothing changed" in output
        (project / "tasks.py").write_text(blocks("python tasks.py")[0])
        listing = must(bash("inv --list", project), "inv --list with the README's tasks.py")
        for task in ("deploy", "manage", "status", "lab.up"):
            assert re.search(rf"^\s+{re.escape(task)}\b", listing, re.MULTILINE), listing
    finally:
        bash("inv lab.down", REPO)
