"""djdeploy manage: the command line it sends, the site it picks, the exit status it returns."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from djdeploy.remote.ssh import RemoteResult
from djdeploy.tasks import ops
from tests.test_ops_fakes import FakeRemote, Host, ok, run_task, site_entry, use_inventory


@pytest.fixture(autouse=True)
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_inventory(tmp_path, monkeypatch)


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> FakeRemote:
    fake = FakeRemote()
    monkeypatch.setattr(ops, "connect", lambda host, password=None: fake)
    return fake


def manage_calls(remote: FakeRemote) -> list[str]:
    return [command for command in remote.commands if command.startswith("manage-")]


def test_a_command_without_arguments_needs_no_dashes(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 0
    assert manage_calls(remote) == ["manage-example migrate"]


def test_arguments_are_sent_as_one_quoted_word_each(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "shell", "-c", "x; rm -rf /") == 0
    assert manage_calls(remote) == ["manage-example shell -c 'x; rm -rf /'"]


@pytest.mark.parametrize(
    "argument",
    [
        "; touch /tmp/owned",
        "$(touch /tmp/owned)",
        "`touch /tmp/owned`",
        'it\'s "quoted"',
        "two\nlines",
        "*",
        "-",
    ],
)
def test_shell_metacharacters_reach_django_as_data(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote, argument: str
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "check", argument, "--", argument) == 0
    [command] = manage_calls(remote)
    # The host's shell splits the line back into exactly the words typed.
    assert shlex.split(command) == ["manage-example", "check", argument, "--", argument]


def test_flags_after_the_command_go_to_django(monkeypatch: pytest.MonkeyPatch, remote: FakeRemote) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "check", "--deploy", "--fail-level", "ERROR") == 0
    assert run_task(monkeypatch, "manage", "lab1", "showmigrations", "--plan", "notes") == 0
    assert manage_calls(remote) == [
        "manage-example check --deploy --fail-level ERROR",
        "manage-example showmigrations --plan notes",
    ]


def test_a_dash_dash_after_the_command_still_ends_the_options(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "showmigrations", "--", "--plan", "notes") == 0
    assert manage_calls(remote) == ["manage-example showmigrations --plan notes"]


def test_djdeploys_options_go_before_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRemote(Host(sites=[site_entry("shop"), site_entry("blog")]))
    monkeypatch.setattr(ops, "connect", lambda host, password=None: fake)
    arguments = ["--site", "blog", "lab1", "check", "--deploy", "--site", "shop", "-i", "x.yaml"]
    assert run_task(monkeypatch, "manage", *arguments) == 0
    # After COMMAND, words spelled like djdeploy's options are Django's.
    assert manage_calls(fake) == ["manage-blog check --deploy --site shop -i x.yaml"]


def test_the_exit_status_is_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(command: str) -> RemoteResult:
        return ok(command, exit_code=3 if command.startswith("manage-") else 0)

    fake = FakeRemote(Host(answer=answer))
    monkeypatch.setattr(ops, "connect", lambda host, password=None: fake)
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 3


def test_output_is_streamed_without_a_terminal(monkeypatch: pytest.MonkeyPatch, remote: FakeRemote) -> None:
    run_task(monkeypatch, "manage", "lab1", "migrate")
    [call] = [call for call in remote.calls if call.command.startswith("manage-")]
    assert call.options["stream"] is True
    assert call.options["interactive"] is False
    # Started as root (through sudo when the inventory says so): nobody could answer a sudo prompt.
    assert call.options["privileged"] is True


def test_a_terminal_gets_a_terminal_on_the_host(monkeypatch: pytest.MonkeyPatch, remote: FakeRemote) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    run_task(monkeypatch, "manage", "lab1", "shell")
    [call] = [call for call in remote.calls if call.command.startswith("manage-")]
    assert call.options["interactive"] is True
    # The manage command's own sudo prompt, if any, is answered on the terminal.
    assert call.options["privileged"] is False


def test_site_picks_one_of_several(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRemote(Host(sites=[site_entry("shop"), site_entry("blog")]))
    monkeypatch.setattr(ops, "connect", lambda host, password=None: fake)
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 1
    assert manage_calls(fake) == []
    assert run_task(monkeypatch, "manage", "lab1", "--site", "blog", "migrate") == 0
    assert manage_calls(fake) == ["manage-blog migrate"]


def test_unknown_site_and_missing_command_are_refused(
    monkeypatch: pytest.MonkeyPatch, remote: FakeRemote, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "--site", "nope", "migrate") == 1
    assert "no site named 'nope'" in capsys.readouterr().err
    assert run_task(monkeypatch, "manage", "lab1") == 1
    assert "did not receive required positional arguments: 'command'" in capsys.readouterr().err
    assert manage_calls(remote) == []
