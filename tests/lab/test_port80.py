"""End to end: a site on port 80, which Caddy serves over plain HTTP, deployed, checked and rolled back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from djdeploy import inventory
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from djdeploy.remote.ssh import Remote
from tests.lab.helpers import inv, write_inventory
from tests.lab.test_deploy import deploy, deploy_log, generation, lab1, said

pytestmark = pytest.mark.lab

GUNICORN = ["gunicorn-example.socket", "gunicorn-example.service"]


@pytest.fixture(scope="module")
def plain(lab: LabLayout, workspace: Path) -> Path:
    """lab1 with the example site on port 80 deployed by `inv deploy`."""
    path = write_inventory(lab, workspace, "port-80", port="80")
    result = deploy(path)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def plain_page(host: inventory.Host, path: str = "/healthz") -> probe.Response:
    return probe.request(host.address, "example.lab", path, port=80, tls=False)


def status(inventory_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = inv("status", "--inventory", str(inventory_path), "--json", *args, check=False)
    [row] = json.loads(result.stdout)
    return result.returncode, row


def test_a_port_80_site_deploys_and_passes_its_health_check(plain: Path) -> None:
    host = lab1(plain)
    assert generation(host) == "system-1-link"
    assert deploy_log(host)[-1]["outcome"] == "success"
    response = plain_page(host)
    assert (response.status, response.body, response.certificate) == (200, "ok", None)


def test_status_asks_the_port_80_site_over_plain_http(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, row = status(plain)
    assert code == 0, row
    assert (row["healthy"], row["problems"]) == (True, [])
    [site] = row["sites"]
    assert (site["url"], site["tls"], site["http_status"], site["certificate_names"]) == (
        "http://example.lab/healthz",
        False,
        200,
        [],
    )
    monkeypatch.setenv("COLUMNS", "80")
    table = inv("status", "--inventory", str(plain)).stdout
    assert "…" not in table
    assert max(len(line) for line in table.splitlines()) <= 80
    [row_line] = [line for line in table.splitlines() if line.lstrip().startswith("example ")]
    assert row_line.split() == ["example", "all", "active", "200", "-", "(plain", "HTTP)", "applied"]


def test_verify_checks_the_plain_http_answer_and_the_alias(
    plain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    result = inv("verify", "--inventory", str(plain), "--host", "lab1", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "http://example.lab/healthz answered 200; plain HTTP, no certificate" in result.stdout
    assert "www.example.lab redirects permanently to http://example.lab" in result.stdout
    assert "FAIL" not in result.stdout


def test_status_exits_1_when_the_site_is_down_and_says_why(plain: Path) -> None:
    host = lab1(plain)
    with Remote(host.ssh_target) as remote:
        # The socket too: a request to a stopped gunicorn would start it again through its socket.
        remote.run(["systemctl", "stop", *GUNICORN])
        try:
            code, row = status(plain)
            table = inv("status", "--inventory", str(plain), check=False)
        finally:
            remote.run(["systemctl", "start", *GUNICORN])
    assert code == 1
    assert row["healthy"] is False
    assert "gunicorn-example.service is inactive" in row["problems"]
    assert "http://example.lab/healthz answered 502, expected 200" in row["problems"]
    assert table.returncode == 1
    assert "socket, gunicorn inactive" in said(table)
    assert "lab1 is down: gunicorn-example.socket is inactive;" in said(table)
    assert status(plain)[0] == 0


def test_a_port_80_release_failing_its_health_check_is_rolled_back(
    lab: LabLayout, workspace: Path, plain: Path
) -> None:
    broken = write_inventory(
        lab, workspace, "port-80-unhealthy", port="80", healthCheckPath='"/no-such-page"'
    )
    host = lab1(broken)
    before = generation(host)
    result = deploy(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    text = said(result)
    assert "because the health check failed" in text
    # Django redirects a plain HTTP request for any other page than /healthz to HTTPS.
    assert re.search(r"http://example\.lab/no-such-page answered \d+, expected 200", text), text
    assert generation(host) == before
    assert deploy_log(host)[-1]["outcome"] == "rolled back"
    assert plain_page(host).body == "ok"
