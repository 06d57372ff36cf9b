"""The djdeploy command and a project's own tasks.py: which words of `manage` are Django's, the program's
version and task list, and `inv` in a project directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from djdeploy import cli
from djdeploy.cli import program
from djdeploy.tasks import ops
from djdeploy.tasks.common import (
    INVENTORY_ENV,
    django_words,
    django_words_start,
    end_options_before_django_words,
)
from tests.test_ops_fakes import INVENTORY

DJDEPLOY = Path(sys.executable).parent / "djdeploy"

# A project's tasks.py: djdeploy's tasks, and one of its own beside them.
PROJECT_TASKS = """\
from invoke.tasks import task

from djdeploy.tasks import namespace as ns


@task
def hello(context):
    \"\"\"Say hello from the project's own task.\"\"\"
    print("hello from the project")


ns.add_task(hello)
"""


@pytest.mark.parametrize(
    ("words", "start"),
    [
        (["manage", "prod", "check", "--deploy"], 3),
        (["manage", "prod", "migrate"], 3),
        (["manage", "--site", "blog", "prod", "check", "--deploy"], 5),
        (["manage", "--site=blog", "-i", "inv.yaml", "prod", "check", "--deploy"], 6),
        (["manage", "-sblog", "prod", "check", "--deploy"], 4),
        (["manage", "prod", "--site", "blog", "check", "--deploy"], 5),
        (["manage", "--host", "prod", "check", "--deploy"], 4),
        (["dj.manage", "prod", "check", "--deploy"], 3),
        (["status", "--json", "manage", "prod", "migrate", "--fake"], 5),
        # After COMMAND, words that look like djdeploy's or Invoke's options are Django's.
        (["manage", "prod", "check", "--site", "x", "--inventory", "y", "--help"], 3),
        (["manage", "prod", "shell", "-c", "import os; os.system('x')"], 3),
        (["manage", "prod", "check", "; rm -rf /", "$(touch x)", "`id`", "--", "*"], 3),
        # A `--` right after COMMAND ends the options; Django's words follow it.
        (["manage", "prod", "showmigrations", "--", "--plan"], 4),
    ],
)
def test_django_words_start_after_the_command(words: list[str], start: int) -> None:
    assert django_words_start(words, ops.manage) == start


@pytest.mark.parametrize(
    "words",
    [
        ["manage"],
        ["manage", "prod"],
        ["manage", "--site", "blog", "prod"],
        ["manage", "prod", "--", "check"],
        ["status", "--json"],
        [],
    ],
)
def test_no_django_words_without_a_host_and_a_command(words: list[str]) -> None:
    assert django_words_start(words, ops.manage) is None


def test_options_end_before_djangos_words_once() -> None:
    words = ["manage", "--site", "blog", "prod", "check", "--deploy", "--fail-level", "ERROR"]
    end_options_before_django_words(words, ops.manage)
    assert words == ["manage", "--site", "blog", "prod", "check", "--", "--deploy", "--fail-level", "ERROR"]
    end_options_before_django_words(words, ops.manage)
    assert words.count("--") == 1


def test_options_stay_as_they_are_without_django_words() -> None:
    words = ["manage", "prod", "migrate"]
    end_options_before_django_words(words, ops.manage)
    assert words == ["manage", "prod", "migrate"]


def test_django_words_come_from_the_command_line_as_typed() -> None:
    argv = ["/usr/bin/djdeploy", "manage", "prod", "shell", "-c", "a; b", "--", ""]
    assert django_words(ops.manage, argv) == ["-c", "a; b", "--", ""]
    assert django_words(ops.manage, ["inv", "manage", "prod", "showmigrations", "--", "--plan"]) == ["--plan"]
    assert django_words(ops.manage, ["inv", "manage", "prod", "migrate"]) == []


def run_program(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        program.run(["djdeploy", *args])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_program(capsys, "--version") == f"djdeploy {version('djdeploy')}\n"


def test_list_shows_the_user_tasks_only(capsys: pytest.CaptureFixture[str]) -> None:
    listed = {line.split()[0] for line in run_program(capsys, "--list").splitlines()[1:] if line.strip()}
    assert {
        "deploy",
        "rollback",
        "unlock",
        "status",
        "manage",
        "logs",
        "verify",
        "lab.up",
        "lab.down",
    } <= listed
    assert "test" not in listed


def test_the_installed_command_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(DJDEPLOY), "--version"], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == f"djdeploy {version('djdeploy')}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory of its own: tasks.py with djdeploy's tasks and its own, and inventory.yaml."""
    (tmp_path / "tasks.py").write_text(PROJECT_TASKS)
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    return tmp_path


def run_in(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # ./inventory.yaml, not one named by the environment; wide enough that Rich wraps no message.
    environment = {name: value for name, value in os.environ.items() if name != INVENTORY_ENV}
    environment["COLUMNS"] = "300"
    return subprocess.run(
        list(argv), cwd=project, env=environment, capture_output=True, text=True, check=False, timeout=120
    )


def test_a_projects_tasks_py_lists_djdeploys_tasks_and_its_own(project: Path) -> None:
    result = run_in(project, sys.executable, "-m", "invoke", "--list")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert {"deploy", "status", "manage", "lab.up", "hello"} <= listed
    hello = run_in(project, sys.executable, "-m", "invoke", "hello")
    assert (hello.returncode, hello.stdout) == (0, "hello from the project\n")


@pytest.mark.parametrize("command", [[sys.executable, "-m", "invoke"], [str(DJDEPLOY)]])
def test_djangos_flags_are_not_taken_for_djdeploys(project: Path, command: list[str]) -> None:
    # The words reach the task, which reads ./inventory.yaml and names the unknown host (nothing connects).
    result = run_in(project, *command, "manage", "nohost", "check", "--deploy", "--fail-level", "ERROR")
    assert result.returncode == 1
    assert "No idea what" not in result.stderr
    assert "inventory.yaml has no host named nohost. Hosts it lists: lab1, lab2." in result.stderr


def invoke_reads(words: list[str]) -> tuple[str | None, dict[str, object]]:
    """The task and the arguments Invoke's program parses from a command line."""
    reader = cli.invoke_program.__wrapped__()
    reader.create_config()
    reader.parse_core(["djdeploy", *words])
    reader.parse_collection()
    reader.parse_tasks()
    [parsed] = reader.tasks
    return parsed.name, {
        argument.name: argument.value for argument in parsed.args.values() if argument.got_value
    }


@pytest.mark.parametrize(
    "words",
    [
        ["deploy"],
        ["deploy", "--host", "web1,web2", "--dry-run", "--parallel=3", "--build-on", "target"],
        ["deploy", "--on", "@web", "--verify", "--confirm-timeout", "30", "--inventory=prod.yaml"],
        ["status", "--json", "--timeout", "5"],
        ["status", "--host=lab1", "--timeout=2.5"],
        ["verify", "--on", "@db"],
    ],
)
def test_a_plain_command_line_gets_the_arguments_invoke_would_parse(words: list[str]) -> None:
    plain = cli.plain_arguments(words)
    assert plain is not None
    declared, arguments = plain
    assert (declared.invoke_task.name, arguments) == invoke_reads(words)


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["--list"],
        ["deploy", "--help"],
        ["deploy", "-H", "web1"],
        ["deploy", "--host"],
        ["deploy", "--host", "--dry-run"],
        ["deploy", "--host", "a", "--host", "b"],
        ["deploy", "--dry_run"],
        ["deploy", "--dry-run=yes"],
        ["deploy", "status"],
        ["status", "--timeout", "soon"],
        ["rollback", "--host", "web1"],
        ["manage", "web1", "migrate"],
        ["db.backups", "web1"],
    ],
)
def test_any_other_command_line_goes_to_invoke(words: list[str]) -> None:
    assert cli.plain_arguments(words) is None


def test_a_plain_command_line_runs_without_invoke() -> None:
    script = (
        "import sys; from djdeploy import cli; cli.plain_arguments(['deploy', '--dry-run']); "
        "heavy = ('invoke', 'fabric', 'paramiko'); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in heavy))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
