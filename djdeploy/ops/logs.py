"""The journal of a host's sites and of Caddy, read with journalctl on the host."""

from __future__ import annotations

import re
from collections.abc import Sequence

from djdeploy.errors import DjdeployError
from djdeploy.host.sites import CADDY_UNIT, Site
from djdeploy.remote.ssh import Remote

# "90s", "15min", "1h", "2 days": a time span, which journalctl reads as "that long ago" with a leading "-".
_TIME_SPAN = re.compile(r"\d+\s*(us|ms|s|sec|seconds?|m|min|minutes?|h|hours?|d|days?|w|weeks?)")


def since_argument(since: str) -> str:
    """journalctl's --since for a span ("1h": one hour ago) or a time journalctl understands itself."""
    text = since.strip()
    if not text:
        raise DjdeployError("--since needs a value, e.g. --since 1h or --since '2025-01-31 12:00'.")
    return f"-{text}" if _TIME_SPAN.fullmatch(text) else text


def journal_argv(sites: Sequence[Site], *, follow: bool, since: str | None, lines: int) -> list[str]:
    """journalctl for every unit of the sites, and Caddy's."""
    argv = ["journalctl", "--no-pager", "--output", "short-iso"]
    for unit in [unit for site in sites for unit in site.units] + [CADDY_UNIT]:
        argv += ["--unit", unit]
    if since:
        argv += ["--since", since_argument(since)]
    else:
        argv += ["--lines", str(lines)]
    if follow:
        argv.append("--follow")
    return argv


def show(remote: Remote, sites: Sequence[Site], *, follow: bool, since: str | None, lines: int) -> int:
    """Stream the journal to the terminal (with follow, until interrupted); return journalctl's status."""
    # A terminal on the host for --follow: when the connection closes, journalctl gets a hangup and ends.
    result = remote.run(
        journal_argv(sites, follow=follow, since=since, lines=lines),
        check=False,
        stream=True,
        pty=follow,
        privileged=True,
    )
    return result.exit_code
