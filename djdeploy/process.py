"""The one place that runs local commands."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from djdeploy.errors import CommandError, DjdeployError


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
        raise DjdeployError(f"`{argv[0]}` is not installed or not on PATH. {hint}".strip()) from exc
    except subprocess.TimeoutExpired as exc:
        raise DjdeployError(
            f"`{' '.join(argv)}` did not finish within {timeout:.0f} s. {hint}".strip()
        ) from exc
    if check and result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stdout + result.stderr, hint)
    return result


def output(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    hint: str = "",
) -> str:
    """Run a command and return its stripped standard output."""
    return run(argv, env=env, timeout=timeout, hint=hint).stdout.strip()
