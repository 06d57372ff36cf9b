"""The lab keeps its addresses on this machine: a host cut off is unreachable here, never routed elsewhere."""

from __future__ import annotations

import errno
import socket
import subprocess
import time

import pytest

from djdeploy.lab import network
from tests.lab.helpers import lab_hosts

pytestmark = pytest.mark.lab


def unreachable_routes() -> set[str]:
    listing = subprocess.run(
        ["ip", "route", "show", "type", "unreachable"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[1] for line in listing.splitlines() if line.strip()}


def connect(address: str) -> OSError | None:
    """The error of a TCP connection to the host's SSH port (None when it connects), within 5 s."""
    try:
        with socket.create_connection((address, 22), timeout=5):
            return None
    except OSError as exc:
        return exc


def test_a_host_whose_veth_is_down_is_unreachable_here() -> None:
    with lab_hosts(1) as layout:
        guarded = set(network.guard_routes(layout))
        # Exactly the lab's subnets: one /24 per possible host of this instance, nothing wider.
        assert guarded <= unreachable_routes()
        assert all(route.startswith(f"{layout.subnet}.") and route.endswith(".0/24") for route in guarded)
        host = layout.host(1)
        assert connect(host.address) is None
        subprocess.run(["ip", "link", "set", host.host_link, "down"], check=True)
        try:
            started = time.monotonic()
            error = connect(host.address)
            took = time.monotonic() - started
            route = subprocess.run(
                ["ip", "route", "get", host.address], capture_output=True, text=True, check=False
            )
        finally:
            subprocess.run(["ip", "link", "set", host.host_link, "up"], check=True)
        # Refused by this machine at once: no packet left it for a server elsewhere to answer.
        assert isinstance(error, OSError)
        assert error.errno == errno.EHOSTUNREACH, error
        assert took < 1, took
        assert route.returncode != 0
        assert "No route to host" in route.stderr
        deadline = time.monotonic() + 30
        while connect(host.address) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert connect(host.address) is None  # the veth's own route wins again once it is up
    assert not guarded & unreachable_routes()  # lab.down removed exactly what lab.up added
