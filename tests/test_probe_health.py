"""Requests to a site by its name (over plain HTTP for a site on port 80) and the deploy's health check."""

from __future__ import annotations

import http.server
import json
import shlex
import threading
from collections.abc import Callable, Iterator

import pytest

from djdeploy.deploy import health
from djdeploy.host import sites
from djdeploy.remote import probe
from tests.fake_ssh import Answer, ok
from tests.test_ops_fakes import ADDRESS, Host, connected, site_entry

[PLAIN_SITE] = sites.parse_manifest(json.dumps([site_entry("plain", port=80)]), "of the test")


class _EchoHost(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the Host header and path it was sent."""

    def do_GET(self) -> None:
        body = f"{self.headers['Host']} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHost)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_plain_http_request_names_the_site_and_has_no_certificate(plain_server: int) -> None:
    response = probe.request("127.0.0.1", "plain.test", "/healthz", port=plain_server, tls=False)
    assert (response.status, response.body) == (200, f"plain.test:{plain_server} /healthz")
    assert response.certificate is None


def test_a_port_80_site_is_served_over_plain_http() -> None:
    assert (PLAIN_SITE.port, PLAIN_SITE.tls, PLAIN_SITE.canonical_url) == (80, False, "http://plain.test")


def systemctl_all_active(command: str) -> Answer:
    assert command.startswith("systemctl is-active")
    return ok("active\n" * (len(command.split()) - 2))


@pytest.mark.parametrize(
    ("answer", "problems"), [(200, ()), (500, ("http://plain.test/healthz answered 500, expected 200",))]
)
def test_health_check_asks_a_port_80_site_over_plain_http(
    monkeypatch: pytest.MonkeyPatch, answer: int, problems: tuple[str, ...]
) -> None:
    asked: list[tuple[str, str, str, dict[str, object]]] = []

    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        asked.append((address, hostname, path, options))
        return probe.Response(answer, {}, "", None)

    monkeypatch.setattr(probe, "request", request)
    remote, _ = connected(monkeypatch, Host(respond=manage_says_nothing))
    report = health.check(remote, ADDRESS, [PLAIN_SITE], timeout=0)
    assert report == health.Report(problems)
    [(address, hostname, path, options)] = asked
    assert (address, hostname, path, options["port"], options["tls"]) == (
        ADDRESS,
        "plain.test",
        "/healthz",
        80,
        False,
    )


def manage_says_nothing(command: str) -> Answer:
    """systemctl finds every unit active; the site's manage shell prints nothing."""
    return systemctl_all_active(command) if command.startswith("systemctl") else ok()


def answering(status: int, body: str = "") -> Callable[..., probe.Response]:
    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        return probe.Response(status, {}, body, None)

    return request


def problems_of(
    monkeypatch: pytest.MonkeyPatch, answers: Callable[..., probe.Response], respond: Callable[[str], Answer]
) -> str:
    monkeypatch.setattr(probe, "request", answers)
    remote, _ = connected(monkeypatch, Host(respond=respond))
    return " | ".join(health.check(remote, ADDRESS, [PLAIN_SITE], timeout=0).problems)


def test_a_400_names_the_host_to_add_to_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    said = problems_of(monkeypatch, answering(400, "<h1>Bad Request (400)</h1>"), manage_says_nothing)
    assert "answered 400, expected 200: Django refuses the name plain.test" in said
    assert "Add 'plain.test' to ALLOWED_HOSTS" in said


def test_a_500_is_explained_by_the_exception_the_site_raises_on_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = {
        "traceback": "ValueError: Missing staticfiles manifest entry for 'css/x.css'",
        "missing_static": "css/x.css",
    }
    commands: list[str] = []

    def respond(command: str) -> Answer:
        if command.startswith("systemctl"):
            return systemctl_all_active(command)
        commands.append(command)
        return ok("noise\n@@djdeploy-request-error " + json.dumps(error) + "\n")

    said = problems_of(monkeypatch, answering(500), respond)
    assert said.startswith(
        "http://plain.test/healthz answered 500: a template asks for the static file 'css/x.css', which is "
        "not in the manifest"
    )
    assert "ValueError: Missing staticfiles manifest entry" in said
    [command] = commands  # asked once, after the last round
    manage, *arguments, script = shlex.split(command)
    assert (manage, arguments) == ("/run/current-system/sw/bin/manage-plain", ["shell", "-c"])
    assert script.endswith("\nexplain('plain.test', '/healthz', False)\n")


def test_a_service_its_request_started_is_found_active_in_the_same_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a switch a socket-activated service is stopped until the health check's request starts it."""
    started: list[str] = []

    def request(address: str, hostname: str, path: str = "/", **options: object) -> probe.Response:
        started.append(hostname)
        return probe.Response(200, {}, "", None)

    def systemctl(command: str) -> Answer:
        if started:
            return systemctl_all_active(command)
        return ok("inactive\n" * (len(command.split()) - 2))

    monkeypatch.setattr(probe, "request", request)
    remote, _ = connected(monkeypatch, Host(respond=systemctl))
    assert health.check(remote, ADDRESS, [PLAIN_SITE], timeout=0) == health.Report(())
    assert started == ["plain.test"]
