"""What runs on each host, queried in parallel: generation, last deploy, lock, and each site's health.

Each host costs one SSH connection and two commands: a script that prints the host's state and its sites
manifest, then one that asks for the state of the units and the migrations the manifest names. The sites are
then requested through Caddy from this machine. A host that does not answer is a row with the reason, within
its connect timeout, whatever the other hosts do.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

from djdeploy.errors import DjdeployError
from djdeploy.host import migration_files, records, sites
from djdeploy.host import paths as host_paths
from djdeploy.host import system as host_system
from djdeploy.host.lock import LockOwner
from djdeploy.host.records import DeployRecord
from djdeploy.host.sites import Site
from djdeploy.host.system import Generation
from djdeploy.inventory import Host
from djdeploy.ops import scheduled
from djdeploy.ops.scheduled import ScheduledRun
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote

PROBE_TIMEOUT = 5.0
# Time for the answers of a connected host; a host gets its connect timeout on top of it.
QUERY_TIMEOUT = 30.0
MIGRATIONS_CACHE = host_paths.STATUS_CACHE


@dataclass(frozen=True)
class UnitState:
    unit: str
    state: str


@dataclass(frozen=True)
class SiteStatus:
    name: str
    hostname: str
    # The health check's URL; plain HTTP (no certificate) for a site on port 80.
    url: str
    tls: bool
    units: tuple[UnitState, ...]
    http_status: int | None
    http_expected: int
    http_error: str | None
    certificate_names: tuple[str, ...]
    certificate_expires: datetime | None
    # None when they could not be listed (migrations_error says why).
    unapplied_migrations: tuple[str, ...] | None
    migrations_error: str | None
    scheduled: tuple[ScheduledRun, ...] = ()
    # Applied in the database, unknown to the running code: a schema ahead of the code (a local database).
    unknown_applied_migrations: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostStatus:
    host: str
    address: str
    reachable: bool
    error: str | None = None
    generation: Generation | None = None
    # /run/current-system is the generation's system (not so after a `test` switch or before a reboot).
    running: bool = False
    last_deploy: DeployRecord | None = None
    lock: LockOwner | None = None
    sites: tuple[SiteStatus, ...] = ()
    # Sites the inventory lists for the host that its system does not run.
    missing_sites: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        """What is down: the host, a site the inventory lists, a unit, or an answer other than the expected.

        Unapplied migrations, a lock or a generation that does not run are shown, but are no problem here.
        """
        if not self.reachable:
            return (f"unreachable: {self.error}",)
        if self.error:
            return (f"not queried: {self.error}",)
        found = [f"{name} is in the inventory, not in the host's system" for name in self.missing_sites]
        for site in self.sites:
            found += [f"{unit.unit} is {unit.state}" for unit in site.units if unit.state != "active"]
            if site.http_status is None:
                found.append(f"{site.url} did not answer: {site.http_error}")
            elif site.http_status != site.http_expected:
                found.append(f"{site.url} answered {site.http_status}, expected {site.http_expected}")
        return tuple(found)

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Section:
    output: str
    exit_code: int


_BEGIN = "@@djdeploy-begin"
_END = "@@djdeploy-end"
_SECTION = re.compile(rf"^{_BEGIN} (\S+)\n(.*?)\n{_END} (\d+)$", re.MULTILINE | re.DOTALL)


def sections_script(commands: Sequence[tuple[str, str]]) -> str:
    """One shell script that runs each named command and frames its output and exit status."""
    parts = []
    for name, command in commands:
        # A subshell: a command that exits ends its own section only.
        parts.append(f"echo '{_BEGIN} {name}'\n(\n{command}\n) 2>&1\nprintf '\\n{_END} %s\\n' \"$?\"")
    return "\n".join(parts) + "\n"


def parse_sections(output: str) -> dict[str, Section]:
    return {
        match.group(1): Section(match.group(2).removesuffix("\n"), int(match.group(3)))
        for match in _SECTION.finditer(output)
    }


def run_sections(remote: Remote, commands: Sequence[tuple[str, str]], timeout: float) -> dict[str, Section]:
    result = remote.run_shell(sections_script(commands), timeout=timeout, privileged=True)
    return parse_sections(result.stdout)


def state_commands() -> list[tuple[str, str]]:
    return [
        ("facts", host_system.FACTS_COMMAND),
        ("manifest", shlex.join(["cat", sites.MANIFEST_PATH])),
        ("deploy", records.LAST_COMMAND),
    ]


def _site_commands(host_sites: Sequence[Site]) -> list[tuple[str, str]]:
    units = [unit for site in host_sites for unit in site.units]
    commands = [("units", shlex.join(["systemctl", "is-active", "--", *units]))] if units else []
    for site in host_sites:
        commands.append((f"migrations-{site.name}", migrations_command(site)))
    if (scheduled_command := scheduled.command(host_sites)) is not None:
        commands.append(("scheduled", scheduled_command))
    return commands


# Starting Django takes the host about a second per site: the plan is first asked of migration-check.sh
# (host.migration_files), which in one query knows when every migration is applied. Either answer is kept on
# the host and reused while the site's code (named by store paths in its manage command) and its migrations
# table are unchanged.
_PLAN_KEY = """\
fingerprint=$(runuser -u postgres -- psql -XAtq -d {database} -c {query} 2>/dev/null)
key="$(cksum <"$(command -v {manage})") $fingerprint"
"""
_CACHED_PLAN = (
    _PLAN_KEY
    + """\
if [ -n "$fingerprint" ] && [ "$(head -n 1 {cache} 2>/dev/null)" = "$key" ]; then
  tail -n +2 {cache}
  exit
fi
answer=
if [ -n "$fingerprint" ] && mkdir -p {cache_dir} && manage=$(command -v {manage}); then
  answer=$({check} 2>/dev/null)
fi
if [ "$answer" = applied ]; then
  plan=$(sed 's/^/[X]  /' {known})
else
  plan=$({showmigrations}) || exit
fi
rm -f {known}
if [ -n "$fingerprint" ]; then
  applied=$(runuser -u postgres -- psql -XAtq -d {database} -c {rows} 2>/dev/null)
  plan=$(printf '%s\\n%s\\n%s' "$plan" {applied_mark} "$applied")
fi
if [ -n "$fingerprint" ] && mkdir -p {cache_dir}; then
  printf '%s\\n%s\\n' "$key" "$plan" >{cache}.$$ && mv -f {cache}.$$ {cache}
fi
printf '%s\\n' "$plan"
"""
)
# A site whose migrate unit became active since the second in {since}: `migrate` ran for its code and
# succeeded, so its plan has nothing to apply. The deploy records that, and the next status needs no Django.
_MIGRATED_PLAN = (
    """\
ran=$(systemctl show --timestamp=unix --property=ActiveEnterTimestamp --value {unit})
if [ "${{ran#@}}" -ge "$(cat {since})" ] 2>/dev/null; then
"""
    + _PLAN_KEY
    + """\
  if [ -n "$fingerprint" ] && mkdir -p {cache_dir}; then
    printf '%s\\n\\n' "$key" >{cache}.$$ && mv -f {cache}.$$ {cache}
  fi
fi
"""
)


# After the plan, the migrations the database has applied, one a line.
APPLIED_MARK = "@@djdeploy-applied"


def migrations_command(site: Site) -> str:
    """Shell command that prints the site's migration plan (`[ ]` marks the unapplied ones), then, for a local
    database, the migrations it has applied after APPLIED_MARK."""
    showmigrations = shlex.join([site.manage_command, "showmigrations", "--plan"])
    if site.database is None:
        # A database elsewhere: no cheap way to tell whether its migrations table changed.
        return showmigrations
    return _CACHED_PLAN.format(showmigrations=showmigrations, **_plan_fields(site))


def migrated_command(host_sites: Sequence[Site], since_file: str) -> str:
    """Shell command that records, for each site migrated since the second since_file holds, that it has no
    unapplied migration (what `status` would otherwise start Django to learn)."""
    return "".join(
        _MIGRATED_PLAN.format(unit=shlex.quote(site.migrate_unit), since=shlex.quote(since_file), **fields)
        for site in host_sites
        if (fields := _plan_fields(site))
    )


def _plan_fields(site: Site) -> dict[str, str]:
    """What the cached plan's scripts say of a site with a local database (none without one)."""
    if site.database is None:
        return {}
    # The migrations the check found applied, in a file of this status run's own (its shell's PID).
    known = shlex.quote(f"{MIGRATIONS_CACHE}/{site.name}.known") + ".$$"
    return {
        "database": shlex.quote(site.database.name),
        "query": shlex.quote("SELECT count(*), max(id) FROM django_migrations"),
        "rows": shlex.quote("SELECT app || '.' || name FROM django_migrations ORDER BY id"),
        "applied_mark": shlex.quote(APPLIED_MARK),
        "manage": shlex.quote(site.manage_command),
        "cache_dir": shlex.quote(MIGRATIONS_CACHE),
        "cache": shlex.quote(f"{MIGRATIONS_CACHE}/{site.name}"),
        "known": known,
        "check": migration_files.check_command(
            '"$manage"', '"$manage"', shlex.quote(site.database.name), known
        ),
    }


def query_host(remote: Remote, host: Host, timeout: float = QUERY_TIMEOUT) -> HostStatus:
    """The status of a host over an open connection."""
    state = run_sections(remote, state_commands(), timeout)
    facts = host_system.parse_facts(state["facts"].output if "facts" in state else "")
    manifest = state.get("manifest")
    host_sites: tuple[Site, ...] = ()
    if manifest is not None and manifest.exit_code == 0:
        host_sites = sites.parse_manifest(manifest.output, f"of {host.name}")
    listed = sites.of_inventory(host_sites, host.sites)
    with ThreadPoolExecutor(max_workers=max(1, len(listed))) as pool:
        # The sites are requested through Caddy while the host answers the second script.
        requests = [pool.submit(_request, host.address, site) for site in listed]
        answers = run_sections(remote, _site_commands(listed), timeout) if listed else {}
        responses = [request.result() for request in requests]
    units = [unit for site in listed for unit in site.units]
    states = answers["units"].output.split() if "units" in answers else []
    unit_states = dict(zip(units, states, strict=False))
    runs = scheduled.parse(answers["scheduled"].output if "scheduled" in answers else "", listed)
    return HostStatus(
        host=host.name,
        address=host.address,
        reachable=True,
        generation=facts.generation,
        running=facts.runs_profile,
        last_deploy=records.DeployRecord.parse(state["deploy"].output) if "deploy" in state else None,
        lock=facts.lock,
        sites=tuple(
            replace(
                _site_status(site, unit_states, answers.get(f"migrations-{site.name}"), response),
                scheduled=runs[site.name],
            )
            for site, response in zip(listed, responses, strict=True)
        ),
        missing_sites=tuple(name for name in host.sites if name not in {site.name for site in host_sites}),
    )


def _site_status(
    site: Site, unit_states: dict[str, str], migrations: Section | None, response: _Response
) -> SiteStatus:
    unapplied, unknown, migrations_error = _migrations(migrations)
    certificate = response.certificate
    return SiteStatus(
        name=site.name,
        hostname=site.hostname,
        url=site.canonical_url + site.health_path,
        tls=site.tls,
        units=tuple(UnitState(unit, unit_states.get(unit, "unknown")) for unit in site.units),
        http_status=response.status,
        http_expected=site.health_status,
        http_error=response.error,
        certificate_names=certificate.names if certificate else (),
        certificate_expires=certificate.not_after if certificate else None,
        unapplied_migrations=unapplied,
        migrations_error=migrations_error,
        unknown_applied_migrations=unknown,
    )


def _migrations(
    section: Section | None,
) -> tuple[tuple[str, ...] | None, tuple[str, ...], str | None]:
    """The unapplied migrations, those applied that the code does not know, and why none could be listed."""
    if section is None:
        return None, (), "not queried"
    if section.exit_code != 0:
        lines = section.output.strip().splitlines()
        return None, (), lines[-1] if lines else f"exit code {section.exit_code}"
    plan, _, applied = section.output.partition(APPLIED_MARK)
    # showmigrations --plan: "[X]  app.name", "[ ]" when unapplied, "[-]" for a squashed one half applied.
    marked = [(line[:3], line[3:].strip()) for line in plan.splitlines() if line[:3] in ("[X]", "[ ]", "[-]")]
    known = {label for _, label in marked}
    unknown = tuple(label for label in applied.split() if label not in known)
    return tuple(label for mark, label in marked if mark == "[ ]"), unknown, None


@dataclass(frozen=True)
class _Response:
    status: int | None
    error: str | None
    certificate: probe.Certificate | None


def _request(address: str, site: Site) -> _Response:
    """The answer to a request for the site's health check path, through Caddy."""
    try:
        # Certificates of `tls internal` come from Caddy's own CA: read them, do not verify them.
        response = probe.request(
            address,
            site.hostname,
            site.health_path,
            port=site.port,
            tls=site.tls,
            verify=False,
            timeout=PROBE_TIMEOUT,
        )
    except (OSError, http.client.HTTPException) as exc:
        return _Response(None, str(exc) or type(exc).__name__, None)
    return _Response(response.status, None, response.certificate)


class _HostQuery(threading.Thread):
    """Queries one host. A daemon thread: a host that never answers cannot hold up the others or the exit."""

    def __init__(self, host: Host, timeout: float, sudo_password: str | None) -> None:
        super().__init__(name=f"status-{host.name}", daemon=True)
        self.host = host
        self.timeout = timeout
        self.sudo_password = sudo_password
        self.connected = threading.Event()
        self.done = threading.Event()
        # Set once connected or done, whichever comes first.
        self.settled = threading.Event()
        self.outcome: HostStatus | None = None

    def run(self) -> None:
        try:
            with Remote(self.host.ssh_target, self.sudo_password) as remote:
                self.connected.set()
                self.settled.set()
                self.outcome = query_host(remote, self.host, self.timeout)
        except DjdeployError as exc:
            self.outcome = self._failed(exc.message)
        # Whatever goes wrong with one host is that host's row, never a traceback.
        except Exception as exc:
            self.outcome = self._failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()
            self.settled.set()

    def _failed(self, reason: str) -> HostStatus:
        return HostStatus(self.host.name, self.host.address, reachable=self.connected.is_set(), error=reason)

    def result(self, started: float) -> HostStatus:
        connect_timeout = self.host.ssh.connect_timeout
        if not self.settled.wait(max(0.0, started + connect_timeout - time.monotonic())):
            return self._failed(f"no SSH answer within {connect_timeout:.0f} s")
        if not self.done.wait(max(0.0, started + connect_timeout + self.timeout - time.monotonic())):
            return self._failed(f"no answer to the status query within {self.timeout:.0f} s")
        assert self.outcome is not None
        return self.outcome


def query(
    hosts: Sequence[Host], *, timeout: float = QUERY_TIMEOUT, sudo_password: str | None = None
) -> list[HostStatus]:
    """The status of every host, queried all at once."""
    started = time.monotonic()
    workers = [_HostQuery(host, timeout, sudo_password) for host in hosts]
    for worker in workers:
        worker.start()
    return [worker.result(started) for worker in workers]


def to_json(statuses: Sequence[HostStatus]) -> str:
    """Each host as an object, with `healthy` and the `problems` that make it unhealthy."""

    def encode(value: object) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(type(value).__name__)

    hosts = [
        {**asdict(status), "healthy": status.healthy, "problems": list(status.problems)}
        for status in statuses
    ]
    return json.dumps(hosts, indent=2, default=encode)
