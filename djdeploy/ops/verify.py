"""Checks of a deployed host, each reported by name: testinfra's host API on the host, requests through Caddy.

testinfra runs its commands over djdeploy's own SSH connection (so host keys are checked as for every other
command), as root: through sudo when the inventory says so.
"""

from __future__ import annotations

import http.client
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import testinfra.backend.base
import testinfra.host

from djdeploy.errors import DjdeployError
from djdeploy.host import sites
from djdeploy.host.sites import Site
from djdeploy.inventory import Host
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote

PROBE_TIMEOUT = 10.0
# The path asked for on an alias: its redirect must keep it.
ALIAS_PROBE_PATH = "/djdeploy-verify?alias=1"


@dataclass(frozen=True)
class CheckResult:
    check: str
    # "" for a check of the whole host.
    site: str
    passed: bool
    detail: str


Outcome = tuple[bool, str]


class _RemoteBackend(testinfra.backend.base.BaseBackend):  # type: ignore[misc]  # testinfra has no type hints
    """testinfra backend that sends its commands through an open djdeploy Remote."""

    NAME = "djdeploy"

    def __init__(self, remote: Remote) -> None:
        super().__init__(remote.target.name)
        self._remote = remote

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        line = self.get_command(command, *args)
        result = self._remote.run_shell(line, check=False, privileged=True)
        return self.result(result.exit_code, self.encode(line), result.stdout, result.stderr)


def testinfra_host(remote: Remote) -> Any:
    """A testinfra Host whose commands run over remote."""
    backend = _RemoteBackend(remote)
    host = testinfra.host.Host(backend)
    backend.set_host(host)
    return host


def check_host(remote: Remote, address: str, host_sites: Sequence[Site]) -> list[CheckResult]:
    """Every check of the host and of each site, in order: things on the host first, then requests.

    Requests go last because a request to a stopped gunicorn starts it again through its socket.
    """
    host = testinfra_host(remote)
    results = [_run("caddy-active", "", partial(_unit_active, host, "caddy.service"))]
    if any(site.database for site in host_sites):
        results.append(_run("postgresql-active", "", partial(_unit_active, host, "postgresql.service")))
    for site in host_sites:
        results += [
            _run("gunicorn-active", site.name, partial(_unit_active, host, site.gunicorn_unit)),
            _run("gunicorn-socket", site.name, partial(_socket_private, host, site)),
            _run("manage-command", site.name, partial(_on_path, host, site.manage_command)),
            _run("manage-check-deploy", site.name, partial(_check_deploy, host, site)),
            _run("secret-key-file", site.name, partial(_secret_key_private, host, site)),
            _run("secret-not-in-store", site.name, partial(_secret_not_in_store, host, site)),
        ]
        if site.database:
            results.append(_run("database", site.name, partial(_database, host, site.database)))
    for site in host_sites:
        results.append(
            _run("https" if site.tls else "http", site.name, partial(_site_answers, address, site))
        )
        results += [
            _run("alias-redirect", site.name, partial(_alias_redirects, address, site, alias))
            for alias in site.aliases
        ]
    return results


def verify(host: Host, sudo_password: str | None = None) -> list[CheckResult]:
    """Connect to an inventory host and check it and the sites the inventory lists for it."""
    try:
        with Remote(host.ssh_target, sudo_password) as remote:
            host_sites = sites.of_inventory(sites.read(remote), host.sites)
            missing = [name for name in host.sites if name not in {site.name for site in host_sites}]
            results = [
                CheckResult(
                    "site-deployed", name, False, "the inventory lists it; the host's system lacks it"
                )
                for name in missing
            ]
            return results + check_host(remote, host.address, host_sites)
    except DjdeployError as exc:
        return [CheckResult("ssh", "", False, exc.message)]


def _run(name: str, site: str, check: Callable[[], Outcome]) -> CheckResult:
    try:
        passed, detail = check()
    # testinfra reports unexpected answers with AssertionError; anything else is the check's failure too.
    except Exception as exc:
        passed, detail = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return CheckResult(name, site, passed, detail)


def _unit_active(host: Any, unit: str) -> Outcome:
    service = host.service(unit)
    properties = service.systemd_properties
    state = f"{unit} is {properties.get('ActiveState', '?')} ({properties.get('SubState', '?')})"
    return bool(service.is_running), state


def _socket_private(host: Any, site: Site) -> Outcome:
    """The socket is there and only its owner (the site user) and Caddy's group may connect to it."""
    socket_file = host.file(site.socket_path)
    if not socket_file.is_socket:
        return False, f"{site.socket_path} is missing or not a socket"
    caddy_group = host.run("systemctl show --property Group --value caddy.service").stdout.strip() or "caddy"
    mode, user, group = socket_file.mode, socket_file.user, socket_file.group
    detail = f"{site.socket_path} {mode:04o} {user}:{group}"
    problems = []
    if user != site.user:
        problems.append(f"owned by {user}, not {site.user}")
    if group != caddy_group:
        problems.append(f"group {group}, not Caddy's {caddy_group}")
    if mode & 0o007:
        problems.append("others may connect")
    return not problems, detail + ("" if not problems else ": " + ", ".join(problems))


def _on_path(host: Any, command: str) -> Outcome:
    if host.exists(command):
        return True, host.check_output("command -v %s", command)
    return False, f"{command} is not on PATH"


def _check_deploy(host: Any, site: Site) -> Outcome:
    result = host.run("%s check --deploy", site.manage_command)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.rc == 0, " / ".join(lines[-3:]) or f"exit code {result.rc}"


def _secret_key_private(host: Any, site: Site) -> Outcome:
    key_file = host.file(site.secret_key_file)
    if not key_file.exists:
        return False, f"{site.secret_key_file} does not exist"
    real_path = key_file.linked_to
    problems = []
    if key_file.size == 0:
        problems.append("empty")
    if key_file.mode & 0o004:
        problems.append(f"world-readable ({key_file.mode:04o})")
    if real_path.startswith("/nix/store/"):
        problems.append(f"in the Nix store ({real_path})")
    detail = f"{site.secret_key_file} {key_file.mode:04o} {key_file.user}:{key_file.group}"
    return not problems, detail + ("" if not problems else ": " + ", ".join(problems))


NIX_STORE = "/nix/store"
# Reads the key from its file on the host and searches the store for it; the key never leaves the host, and
# it is handed to grep on a pipe, not on a command line that `ps` would show. Exit status: 0 not found,
# 1 found (the files are printed), 3 no key in the file.
_SECRET_SEARCH = """\
key=$(sed -n 's/^\\(export \\)\\{{0,1\\}}SECRET_KEY=//p' {file} | tr -d "\\"'")
if [ -z "$key" ]; then echo "no SECRET_KEY= line in "{file}; exit 3; fi
found=$(printf '%s\\n' "$key" | grep -rlF -f - {store} 2>/dev/null | head -n 5)
if [ -n "$found" ]; then echo $found; exit 1; fi
"""


def secret_search_script(key_file: str, store: str = NIX_STORE) -> str:
    return _SECRET_SEARCH.format(file=shlex.quote(key_file), store=shlex.quote(store))


def _secret_not_in_store(host: Any, site: Site) -> Outcome:
    result = host.run(secret_search_script(site.secret_key_file))
    if result.rc == 0:
        return True, f"the SECRET_KEY is in no file of {NIX_STORE}"
    if result.rc == 1:
        return False, f"the SECRET_KEY is in {result.stdout.strip()}"
    return False, (result.stdout + result.stderr).strip() or f"exit code {result.rc}"


def _database(host: Any, database: sites.Database) -> Outcome:
    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    query = (
        f"SELECT (SELECT count(*) FROM pg_roles WHERE rolname = {literal(database.owner)}), "
        f"(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {literal(database.name)})"
    )
    answer = host.check_output("runuser -u postgres -- psql -XAtq -d postgres -c %s", query)
    roles, _, owner = answer.partition("|")
    if roles != "1":
        return False, f"no role {database.owner}"
    if not owner:
        return False, f"no database {database.name}"
    if owner != database.owner:
        return False, f"database {database.name} is owned by {owner}, not {database.owner}"
    return True, f"database {database.name} owned by role {owner}"


def _certificate_problem(certificate: probe.Certificate | None, name: str) -> str | None:
    if certificate is None:
        return "no certificate"
    wildcard = "*." + name.partition(".")[2]
    if name not in certificate.names and wildcard not in certificate.names:
        return f"certificate for {', '.join(certificate.names) or 'no name'}, not {name}"
    if certificate.not_after <= datetime.now(UTC):
        return f"certificate expired {certificate.not_after:%Y-%m-%d}"
    return None


def _get(address: str, site: Site, hostname: str, path: str) -> probe.Response:
    # Certificates of `tls internal` come from Caddy's own CA: check their names and dates, not their issuer.
    return probe.request(
        address, hostname, path, port=site.port, tls=site.tls, verify=False, timeout=PROBE_TIMEOUT
    )


def _served_problem(site: Site, response: probe.Response, name: str) -> str | None:
    """What is wrong with the certificate of an HTTPS site's answer; a site on port 80 has none to check."""
    return _certificate_problem(response.certificate, name) if site.tls else None


def _site_answers(address: str, site: Site) -> Outcome:
    url = f"{site.canonical_url}{site.health_path}"
    try:
        response = _get(address, site, site.hostname, site.health_path)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{url}: {exc}"
    problem = _served_problem(site, response, site.hostname)
    if problem:
        return False, f"{url}: {problem}"
    if response.status != site.health_status:
        return False, f"{url} answered {response.status}, expected {site.health_status}"
    certificate = response.certificate
    served = (
        f"certificate until {certificate.not_after:%Y-%m-%d}" if certificate else "plain HTTP, no certificate"
    )
    return True, f"{url} answered {response.status}; {served}"


def _alias_redirects(address: str, site: Site, alias: str) -> Outcome:
    expected = site.canonical_url + ALIAS_PROBE_PATH
    try:
        response = _get(address, site, alias, ALIAS_PROBE_PATH)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{alias}: {exc}"
    problem = _served_problem(site, response, alias)
    if problem:
        return False, f"{alias}: {problem}"
    if response.status not in {301, 308} or response.location != expected:
        return (
            False,
            f"{alias} answered {response.status} to {response.location or 'nowhere'}, not to {expected}",
        )
    return True, f"{alias} redirects permanently to {site.canonical_url}"
