"""The scheduled commands of a site: read from the manifest, their last runs from systemd, shown by status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Console

from djdeploy.host import sites
from djdeploy.ops import scheduled, status, status_view
from tests.test_ops_fakes import EXAMPLE_SITE

CLEAR = "django-scheduled-example-clearsessions"
ORDERS = "django-scheduled-example-clean_orders"
MANIFEST_ENTRY = {
    **EXAMPLE_SITE,
    "scheduled": [
        {
            "name": name,
            "service": f"{unit}.service",
            "timer": f"{unit}.timer",
            "command": command,
            "onCalendar": calendar,
        }
        for name, unit, command, calendar in (
            ("clean_orders", ORDERS, ["clean_orders", "--older-than", "30"], "*-*-* 03:00:00"),
            ("clearsessions", CLEAR, ["clearsessions"], "daily"),
        )
    ],
}
STARTED = 1_796_306_985
NEXT = datetime(2026, 12, 4, tzinfo=UTC)


def example() -> sites.Site:
    [site] = sites.parse_manifest(json.dumps([MANIFEST_ENTRY]), "test")
    return site


def test_the_manifest_lists_the_scheduled_commands() -> None:
    assert example().scheduled[0] == sites.ScheduledCommand(
        "clean_orders",
        f"{ORDERS}.service",
        f"{ORDERS}.timer",
        ("clean_orders", "--older-than", "30"),
        "*-*-* 03:00:00",
    )
    # A system built before scheduled commands existed.
    [older] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "test")
    assert older.scheduled == ()


def test_one_systemctl_show_asks_for_every_unit() -> None:
    assert scheduled.command([example()]) == (
        "TZ=UTC LC_ALL=C systemctl show --timestamp=unix "
        "--property=Id,ActiveState,Result,ExecMainStatus,ExecMainStartTimestamp,NextElapseUSecRealtime -- "
        f"{ORDERS}.service {ORDERS}.timer {CLEAR}.service {CLEAR}.timer"
    )
    [older] = sites.parse_manifest(json.dumps([EXAMPLE_SITE]), "test")
    assert scheduled.command([older]) is None


def show(unit: str, **properties: str) -> str:
    return "\n".join(f"{key}={value}" for key, value in {"Id": unit, **properties}.items())


SHOWN = "\n\n".join(
    [
        show(f"{ORDERS}.service", ActiveState="inactive", Result="success", ExecMainStatus="0"),
        show(f"{ORDERS}.timer", ActiveState="active", NextElapseUSecRealtime="Fri 2026-12-04 00:00:00 UTC"),
        show(
            f"{CLEAR}.service",
            ActiveState="failed",
            Result="exit-code",
            ExecMainStatus="1",
            ExecMainStartTimestamp=f"@{STARTED}",
        ),
        show(f"{CLEAR}.timer", ActiveState="active", NextElapseUSecRealtime=""),
    ]
)


def test_last_and_next_runs_from_systemd() -> None:
    orders, clear = scheduled.parse(SHOWN, [example()])["example"]
    # Never ran since boot: systemd's Result of a unit that never ran says nothing.
    assert (orders.last_started, orders.result, orders.exit_status) == (None, None, None)
    assert orders.next_run == NEXT
    assert not orders.failed
    assert clear.last_started == datetime.fromtimestamp(STARTED, UTC)
    assert (clear.result, clear.exit_status, clear.running, clear.next_run) == ("exit-code", 1, False, None)
    assert clear.failed


def test_status_shows_each_scheduled_commands_last_run() -> None:
    runs = scheduled.parse(SHOWN, [example()])["example"]
    site = status.SiteStatus(
        name="example",
        hostname="example.test",
        url="https://example.test/healthz",
        tls=True,
        units=(),
        http_status=200,
        http_expected=200,
        http_error=None,
        certificate_names=(),
        certificate_expires=None,
        unapplied_migrations=(),
        migrations_error=None,
        scheduled=runs,
    )
    host = status.HostStatus("lab1", "10.0.0.2", reachable=True, sites=(site,))
    console = Console(width=120, record=True, color_system=None)
    console.print(status_view.render([host]))
    text = console.export_text()
    assert "example: clean_orders (*-*-* 03:00:00) has not run since boot; next " in text
    started = f"{datetime.fromtimestamp(STARTED, UTC).astimezone():%Y-%m-%d %H:%M}"
    assert f"example: clearsessions (daily) last ran {started}, exit-code, exit status 1\n" in text
    # A failed scheduled run is shown, but does not make the host down.
    assert host.healthy
