"""The deploy's health check: every site's units active and every site answering through Caddy (over HTTPS,
or plain HTTP for a site on port 80)."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from djdeploy.host.sites import Site
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote

# Between two rounds of a check that found problems, doubling: a unit that was still starting is usually up
# within a tenth of a second; a site that stays down is asked about once a second.
FIRST_RETRY_SECONDS = 0.1
LAST_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Report:
    # What is wrong; none when every unit is active and every site answers as expected.
    problems: tuple[str, ...]


def check(
    remote: Remote,
    address: str,
    sites: Sequence[Site],
    timeout: float,
    *,
    stop: threading.Event | None = None,
) -> Report:
    """Retry, within timeout, until every unit is active and every site answers its expected status.

    stop: once set, the check ends at once with the problems it found last.
    """
    deadline = time.monotonic() + timeout
    pause = stop or threading.Event()
    retry = FIRST_RETRY_SECONDS
    while True:
        problems = _problems(remote, address, sites)
        if not problems or time.monotonic() > deadline or pause.wait(retry):
            return Report(tuple(problems))
        retry = min(2 * retry, LAST_RETRY_SECONDS)


def _problems(remote: Remote, address: str, sites: Sequence[Site]) -> list[str]:
    units = [unit for site in sites for unit in site.units] + ["caddy.service"]
    states = remote.run(["systemctl", "is-active", *units], check=False, timeout=30).stdout.split()
    problems = [f"{unit} is {state}" for unit, state in zip(units, states, strict=False) if state != "active"]
    for site in sites:
        url = site.canonical_url + site.health_path
        try:
            response = probe.request(
                address,
                site.hostname,
                site.health_path,
                port=site.port,
                tls=site.tls,
                verify=False,
                read_certificate=False,
            )
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            problems.append(f"{url} did not answer: {exc}")
            continue
        if response.status != site.health_status:
            problems.append(f"{url} answered {response.status}, expected {site.health_status}")
    return problems
