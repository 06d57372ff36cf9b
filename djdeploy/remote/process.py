"""The one place that runs local commands."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from djdeploy.errors import CommandError, DjdeployError

# The children of _run_by_lines (a build, a copy), which stop_children ends.
_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()


def stop_children() -> None:
    """End the long-running commands under way (a copy), as a terminal's Ctrl-C ends the whole group."""
    with _children_lock:
        children = list(_children)
    for child in children:
        child.terminate()


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise CommandError when it fails and check is set."""
    full_env = {**os.environ, **env} if env is not None else None
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise _not_installed(argv, hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(argv, timeout, hint) from exc
    if check and result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stdout + result.stderr, hint)
    return result


def run_watching(
    argv: Sequence[str], on_error_line: Callable[[str], None], *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output and handing each line of its standard error to on_error_line."""
    return _run_by_lines(argv, on_error_line, merge_output=False, env=None, timeout=timeout, hint="")


def output(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    hint: str = "",
) -> str:
    """Run a command and return its stripped standard output."""
    return run(argv, env=env, timeout=timeout, hint=hint).stdout.strip()


def stream(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    hint: str = "",
) -> str:
    """Run a command, handing each line of its combined output to on_line; return the output."""
    result = _run_by_lines(argv, on_line, merge_output=True, env=env, timeout=timeout, hint=hint)
    if result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stdout, hint)
    return result.stdout


def _run_by_lines(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    merge_output: bool,
    env: Mapping[str, str] | None,
    timeout: float | None,
    hint: str,
) -> subprocess.CompletedProcess[str]:
    """Run a command, handing on each line of its standard error (or of both outputs, merged) as it comes.

    The timeout kills the command whether or not it prints anything.
    """
    full_env = {**os.environ, **env} if env is not None else None
    try:
        child = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
            text=True,
            env=full_env,
        )
    except FileNotFoundError as exc:
        raise _not_installed(argv, hint) from exc
    assert child.stdout is not None
    watched = child.stdout if merge_output else child.stderr
    assert watched is not None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        child.kill()

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.daemon = True  # an interrupted run must not keep the process alive until the timeout
    lines: list[str] = []
    with _children_lock:
        _children.add(child)
    with ThreadPoolExecutor(max_workers=1) as reader:
        stdout = None if merge_output else reader.submit(child.stdout.read)
        if timer:
            timer.start()
        try:
            for line in watched:
                lines.append(line)
                on_line(line.rstrip("\n"))
            returncode = child.wait()
        finally:
            if timer:
                timer.cancel()
            with _children_lock:
                _children.discard(child)
    if timed_out.is_set():
        raise _timed_out(argv, timeout, hint)
    if stdout is None:
        return subprocess.CompletedProcess(list(argv), returncode, "".join(lines), "")
    return subprocess.CompletedProcess(list(argv), returncode, stdout.result(), "".join(lines))


def _not_installed(argv: Sequence[str], hint: str = "") -> DjdeployError:
    return DjdeployError(f"`{argv[0]}` is not installed or not on PATH. {hint}".strip())


def _timed_out(argv: Sequence[str], timeout: float | None, hint: str = "") -> DjdeployError:
    return DjdeployError(f"`{' '.join(argv)}` did not finish within {timeout or 0:.0f} s. {hint}".strip())
