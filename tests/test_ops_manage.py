"""djdeploy manage: the command line it sends, the site it picks, the exit status it returns."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.fake_ssh import Answer, FakeNetwork, Sent
from tests.test_ops_fakes import ADDRESS, Host, run_task, serve, site_entry, use_inventory


@pytest.fixture(autouse=True)
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_inventory(tmp_path, monkeypatch)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    return serve(monkeypatch)


def manage_sent(network: FakeNetwork) -> list[Sent]:
    return [sent for sent in network.sent_to(ADDRESS) if sent.command.startswith("manage-")]


def manage_calls(network: FakeNetwork) -> list[str]:
    return [sent.command for sent in manage_sent(network)]


def test_a_command_without_arguments_needs_no_dashes(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 0
    assert manage_calls(network) == ["manage-example migrate"]


def test_arguments_are_sent_as_one_quoted_word_each(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "shell", "-c", "x; rm -rf /") == 0
    assert manage_calls(network) == ["manage-example shell -c 'x; rm -rf /'"]


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
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork, argument: str
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "check", argument, "--", argument) == 0
    [command] = manage_calls(network)
    # The host's shell splits the line back into exactly the words typed.
    assert shlex.split(command) == ["manage-example", "check", argument, "--", argument]


def test_flags_after_the_command_go_to_django(monkeypatch: pytest.MonkeyPatch, network: FakeNetwork) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "check", "--deploy", "--fail-level", "ERROR") == 0
    assert run_task(monkeypatch, "manage", "lab1", "showmigrations", "--plan", "notes") == 0
    assert manage_calls(network) == [
        "manage-example check --deploy --fail-level ERROR",
        "manage-example showmigrations --plan notes",
    ]


def test_a_dash_dash_after_the_command_still_ends_the_options(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "showmigrations", "--", "--plan", "notes") == 0
    assert manage_calls(network) == ["manage-example showmigrations --plan notes"]


def test_djdeploys_options_go_before_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    network = serve(monkeypatch, Host(sites=[site_entry("shop"), site_entry("blog")]))
    arguments = ["--site", "blog", "lab1", "check", "--deploy", "--site", "shop", "-i", "x.yaml"]
    assert run_task(monkeypatch, "manage", *arguments) == 0
    # After COMMAND, words spelled like djdeploy's options are Django's.
    assert manage_calls(network) == ["manage-blog check --deploy --site shop -i x.yaml"]


def test_the_exit_status_is_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(command: str) -> Answer:
        return Answer(exit_code=3 if command.startswith("manage-") else 0)

    serve(monkeypatch, Host(respond=answer))
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 3


def test_output_is_streamed_without_a_terminal(monkeypatch: pytest.MonkeyPatch, network: FakeNetwork) -> None:
    run_task(monkeypatch, "manage", "lab1", "migrate")
    [sent] = manage_sent(network)
    assert (sent.shown, sent.interactive, sent.pty) == (True, False, False)
    # Started as root through sudo (lab1 logs in as `deploy`): nobody could answer a sudo prompt.
    assert sent.privileged


def test_a_terminal_gets_a_terminal_on_the_host(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    run_task(monkeypatch, "manage", "lab1", "shell")
    [sent] = manage_sent(network)
    assert (sent.interactive, sent.pty) == (True, True)
    # The manage command's own sudo prompt, if any, is answered on the terminal.
    assert not sent.privileged


def test_site_picks_one_of_several(monkeypatch: pytest.MonkeyPatch) -> None:
    network = serve(monkeypatch, Host(sites=[site_entry("shop"), site_entry("blog")]))
    assert run_task(monkeypatch, "manage", "lab1", "migrate") == 1
    assert manage_calls(network) == []
    assert run_task(monkeypatch, "manage", "lab1", "--site", "blog", "migrate") == 0
    assert manage_calls(network) == ["manage-blog migrate"]


def test_unknown_site_and_missing_command_are_refused(
    monkeypatch: pytest.MonkeyPatch, network: FakeNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_task(monkeypatch, "manage", "lab1", "--site", "nope", "migrate") == 1
    assert "no site named 'nope'" in capsys.readouterr().err
    assert run_task(monkeypatch, "manage", "lab1") == 1
    assert "did not receive required positional arguments: 'command'" in capsys.readouterr().err
    assert manage_calls(network) == []
