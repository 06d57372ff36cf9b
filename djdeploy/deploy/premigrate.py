"""A release's migrations applied before the switch, while the old release keeps serving.

A site whose plan finds every migration safe for the old code is migrated here, by the new release's own
`manage-<site> migrate` (its closure is on the host already): the switch's migration unit then finds nothing
to do, so gunicorn, which restarts after it, is down for a moment, not for the migrations. A site with an
unsafe migration keeps them all for the switch, where gunicorn waits for them stopped, as the old code
must not run against them.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from djdeploy.deploy.migrations import SitePlan
from djdeploy.errors import DjdeployError
from djdeploy.host.sites import Site
from djdeploy.remote.ssh import Remote

# Seconds `timeout` on the host gives a stopped migration to end before it kills it; the deployer waits
# that long and a little more before it gives up on the command itself.
_KILL_AFTER = 10
_GRACE = _KILL_AFTER + 20
# `timeout`'s exit status when it stopped the command, and when it had to kill it.
_TIMED_OUT = {124, 137}
# How Django's migrate reports each migration it applied.
_APPLIED = re.compile(r"Applying (\S+)\.\.\. OK")


class PremigrationFailed(DjdeployError):
    """A site's migrations failed (or outlasted their timeout) before the switch: nothing was switched."""


def command(system: Path, site: Site, seconds: int) -> list[str]:
    """The new release's migrate, stopped on the host itself when it outlasts its timeout."""
    return [
        "timeout",
        f"--kill-after={_KILL_AFTER}",
        str(seconds),
        f"{system}/sw/bin/{site.manage_command}",
        "migrate",
        "--noinput",
    ]


def deferred_reason(site_plan: SitePlan) -> str | None:
    """Why a site's migrations wait for the switch (None: they run before it; nothing to apply: no line)."""
    if not site_plan.unsafe:
        return None
    unsafe = "; ".join(f"{m.label} {', '.join(m.unsafe)}" for m in site_plan.unsafe)
    return (
        f"{site_plan.site}: {len(site_plan.apply)} migration(s) run in the switch, gunicorn stopped "
        f"meanwhile: unsafe while the old release serves: {unsafe}"
    )


def run(
    remote: Remote,
    system: Path,
    plans: Sequence[SitePlan],
    sites: Sequence[Site],
    *,
    timeout: float,
    step: Callable[[str], AbstractContextManager[object]],
    say: Callable[[str], None],
) -> None:
    """Apply, site after site, the migrations of each plan that is safe for the old release; one step each.

    timeout: seconds all of them may take together. say: hears why a site's migrations wait for the switch.
    """
    by_name = {site.name: site for site in sites}
    deadline = time.monotonic() + timeout
    for site_plan in plans:
        if not site_plan.apply:
            continue
        reason = deferred_reason(site_plan)
        if reason is not None:
            say(reason)
            continue
        count = len(site_plan.apply)
        with step(f"migrate {site_plan.site} before the switch ({count} migration(s), old release serving)"):
            left = max(1, round(deadline - time.monotonic()))
            _migrate(remote, system, by_name[site_plan.site], seconds=left, timeout=timeout)


def _migrate(remote: Remote, system: Path, site: Site, *, seconds: int, timeout: float) -> None:
    argv = command(system, site, seconds)
    result = remote.run(argv, check=False, privileged=True, timeout=seconds + _GRACE)
    if result.ok:
        return
    output = [*result.stdout.strip().splitlines(), *result.stderr.strip().splitlines()]
    applied = [match.group(1) for line in output if (match := _APPLIED.search(line))]
    if result.exit_code in _TIMED_OUT:
        what = f"did not finish within the {timeout:.0f} s they may take before the switch and were stopped"
        advice = "Give them longer with `timeouts.migrate` in the inventory or `--migrate-timeout`."
    else:
        what = f"failed (exit code {result.exit_code})"
        advice = (
            f"Fix the migration, then deploy again; `{shlex.join(argv[3:])}` on the host runs it by hand."
        )
    kept = (
        f" These stay applied, which the plan found safe for the old release: {', '.join(applied)}."
        if applied
        else ""
    )
    said = "\n".join(output[-12:])
    raise PremigrationFailed(
        f"{remote.target.name}: the migrations of {site.name} {what}, so nothing was switched: the old "
        f"release still serves.{kept} {advice} It said:\n{said}"
    )
