"""The deploy's health check: every site's units active and every site answering through Caddy."""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from djdeploy import host_paths, probe
from djdeploy.ssh import Remote


@dataclass(frozen=True)
class Site:
    """A site as the system's manifest describes it."""

    name: str
    hostname: str
    port: int
    health_path: str
    health_status: int
    units: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    manage_command: str = ""


def sites_of(system: Path) -> list[Site]:
    """The sites a built system runs, read from its manifest."""
    manifest = system / host_paths.SITES_MANIFEST
    if not manifest.exists():
        return []
    return [parse_site(entry) for entry in json.loads(manifest.read_text())]


def sites_of_remote(remote: Remote, system: Path) -> list[Site]:
    """The sites of a system that is on the host already (a rollback target)."""
    result = remote.run(["cat", str(system / host_paths.SITES_MANIFEST)], check=False)
    return [parse_site(entry) for entry in json.loads(result.stdout)] if result.ok else []


def parse_site(entry: dict[str, object]) -> Site:
    health = entry["healthCheck"]
    assert isinstance(health, dict)
    return Site(
        name=str(entry["name"]),
        hostname=str(entry["hostname"]),
        port=int(str(entry["port"])),
        health_path=str(health["path"]),
        health_status=int(health["status"]),
        units=tuple(str(unit) for unit in entry["units"]),  # type: ignore[attr-defined]
        aliases=tuple(str(alias) for alias in entry.get("aliases", [])),  # type: ignore[attr-defined]
        manage_command=str(entry.get("manageCommand", "")),
    )


@dataclass(frozen=True)
class Report:
    healthy: bool
    problems: tuple[str, ...]


def check(remote: Remote, address: str, sites: list[Site], timeout: float) -> Report:
    """Retry, within timeout, until every unit is active and every site answers its expected status."""
    deadline = time.monotonic() + timeout
    while True:
        problems = _problems(remote, address, sites)
        if not problems or time.monotonic() > deadline:
            return Report(not problems, tuple(problems))
        time.sleep(0.5)


def _problems(remote: Remote, address: str, sites: list[Site]) -> list[str]:
    units = [unit for site in sites for unit in site.units] + ["caddy.service"]
    states = remote.run(["systemctl", "is-active", *units], check=False).stdout.split()
    problems = [f"{unit} is {state}" for unit, state in zip(units, states, strict=False) if state != "active"]
    for site in sites:
        url = f"https://{site.hostname}{'' if site.port == 443 else f':{site.port}'}{site.health_path}"
        try:
            response = probe.request(address, site.hostname, site.health_path, port=site.port, verify=False)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"{url} did not answer: {exc}")
            continue
        if response.status != site.health_status:
            problems.append(f"{url} answered {response.status}, expected {site.health_status}")
    return problems
