"""Requests to a site by its name (over plain HTTP for a site on port 80) and the deploy's health check."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

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
    remote, _ = connected(monkeypatch, Host(respond=systemctl_all_active))
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
