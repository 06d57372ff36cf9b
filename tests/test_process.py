"""Local commands: output handed on line by line, failures and timeouts as errors that say what ran."""

from __future__ import annotations

import pytest

from djdeploy.errors import CommandError, DjdeployError
from djdeploy.remote import process


def test_stream_hands_on_both_outputs_and_returns_them() -> None:
    seen: list[str] = []
    output = process.stream(["sh", "-c", "echo one; echo two >&2"], seen.append)
    assert seen == ["one", "two"]
    assert output == "one\ntwo\n"


def test_stream_raises_with_the_output_when_the_command_fails() -> None:
    with pytest.raises(CommandError, match="exit code 3") as failed:
        process.stream(["sh", "-c", "echo why; exit 3"], lambda line: None, hint="Do this.")
    assert "why" in failed.value.message


def test_a_silent_command_is_stopped_at_its_timeout() -> None:
    # Before, the timeout was checked only when a line arrived: this command would have run its 60 s.
    with pytest.raises(DjdeployError, match="did not finish within 1 s"):
        process.stream(["sleep", "60"], lambda line: None, timeout=1)
    with pytest.raises(DjdeployError, match="did not finish within 1 s"):
        process.run_watching(["sleep", "60"], lambda line: None, timeout=1)


def test_run_watching_keeps_standard_output_apart() -> None:
    errors: list[str] = []
    result = process.run_watching(["sh", "-c", "echo out; echo err >&2; exit 2"], errors.append)
    assert (result.returncode, result.stdout, result.stderr, errors) == (2, "out\n", "err\n", ["err"])


def test_a_missing_program_is_named() -> None:
    with pytest.raises(DjdeployError, match="`no-such-program-here` is not installed"):
        process.stream(["no-such-program-here"], lambda line: None)
