"""The deploy's health check: every site's units active and every site answering through Caddy (over HTTPS,
or plain HTTP for a site on port 80).

An answer that says the project's settings do not fit the site (a 400 for a name ALLOWED_HOSTS lacks, a 500
whose exception request-error.py asks the host for) is said as what to change.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from djdeploy.host.paths import CURRENT_SYSTEM
from djdeploy.host.sites import Site
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote

# Run in the site's `manage-<site> shell` on the host: the exception of a request that answers 500.
REQUEST_ERROR_SCRIPT = resources.files("djdeploy.deploy").joinpath("request-error.py").read_text()
_REQUEST_ERROR_MARKER = "@@djdeploy-request-error "
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
        problems, failing = _problems(remote, address, sites)
        if not problems or time.monotonic() > deadline or pause.wait(retry):
            for index, site in failing.items():
                problems[index] = _server_error(remote, site) or problems[index]
            return Report(tuple(problems))
        retry = min(2 * retry, LAST_RETRY_SECONDS)


def _problems(remote: Remote, address: str, sites: Sequence[Site]) -> tuple[list[str], dict[int, Site]]:
    """What is wrong, and which of it is a site's 500 (whose exception is asked for once, at the end).

    The sites are asked before the units: a request starts a socket-activated service that the switch left
    stopped, so the units asked after it are active, not found inactive for one more round of the check.
    """
    answers: list[str] = []
    failing: dict[int, Site] = {}
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
            answers.append(f"{url} did not answer: {exc}")
            continue
        problem = _wrong_answer(site, url, response)
        if problem and response.status == 500:
            failing[len(answers)] = site
        if problem:
            answers.append(problem)
    units = [unit for site in sites for unit in site.units] + ["caddy.service"]
    states = remote.run(["systemctl", "is-active", *units], check=False, timeout=30).stdout.split()
    problems = [f"{unit} is {state}" for unit, state in zip(units, states, strict=False) if state != "active"]
    # The units' problems first, as a report reads best: what is down, then what it answers.
    return [*problems, *answers], {len(problems) + index: site for index, site in failing.items()}


def _wrong_answer(site: Site, url: str, response: probe.Response) -> str | None:
    if response.status == site.health_status:
        return None
    wrong = f"{url} answered {response.status}, expected {site.health_status}"
    if response.status == 400:
        # Django's answer to a Host header that ALLOWED_HOSTS does not allow (DisallowedHost).
        return (
            f"{wrong}: Django refuses the name {site.hostname}, which its ALLOWED_HOSTS setting lacks. Add "
            f"'{site.hostname}' to ALLOWED_HOSTS in the site's settings (the site's environment has it in "
            "ALLOWED_HOSTS; a list written in the settings must hold it too)"
        )
    return wrong


def _server_error(remote: Remote, site: Site) -> str | None:
    """The end of the traceback of the health check's request, made again in the site's Django on the host."""
    manage = f"{CURRENT_SYSTEM}/sw/bin/{site.manage_command}"
    call = f"explain({site.hostname!r}, {site.health_path!r}, {site.tls!r})"
    result = remote.run(
        [manage, "shell", "-c", f"{REQUEST_ERROR_SCRIPT}\n{call}\n"],
        check=False,
        privileged=True,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(_REQUEST_ERROR_MARKER)]
    if not lines:
        return None
    error = json.loads(lines[-1].removeprefix(_REQUEST_ERROR_MARKER))
    url = site.canonical_url + site.health_path
    if error["missing_static"]:
        return (
            f"{url} answered 500: a template asks for the static file '{error['missing_static']}', "
            "which is not in the manifest of the collected static files: collectstatic did not find it. Put "
            "it in an app's static/ folder or a folder of STATICFILES_DIRS (a frontend build's output), or "
            f"correct the name. The request's exception:\n{error['traceback']}"
        )
    return f"{url} answered 500, expected {site.health_status}, with this exception:\n{error['traceback']}"
