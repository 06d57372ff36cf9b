"""Requests during a deploy whose migrations take 30 s: applied before the switch, the old release serving.

Run as root: python3 -m bench.zero_downtime [--rounds N] [--no-baseline]. Boots lab1 and deploys the example
site, then, N times, a release whose migrations take 30 s (a nullable field, then a data migration that
fills it and waits, with a reverse: the plan finds both safe for the old release), each under a steady
load of HTTPS requests for the home page (which reads the database) from two clients. Each round prints
the requests sent, the failed ones (an error, a status other than 200 or no answer within 10 s), the
longest time without a successful answer, the slowest answer, and the deploy's step times; then their
medians and spread. The baseline round (last, unless --no-baseline) deploys the same with a field the plan
finds unsafe (NOT NULL without a database default): its migrations stay with the switch, and gunicorn is
stopped while they run.
"""

from __future__ import annotations

import argparse
import io
import itertools
import ssl
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from djdeploy import inventory
from djdeploy.deploy import fleet
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Result
from djdeploy.lab.layout import LabLayout
from djdeploy.remote import probe
from tests.lab.helpers import lab_hosts, write_inventory
from tests.lab.test_deploy import release_source

MIGRATION_SECONDS = 30
# Bounds of the load: it stops with the deploy, or at these.
LOAD_SECONDS = 900
LOAD_REQUESTS = 40000
CLIENTS = 2
QUIET = Console(file=io.StringIO())

# Two migrations of a round: a field added to notes.Note, then a data migration that fills it and waits
# MIGRATION_SECONDS (a migration of its own: in the field's transaction, the wait would hold the table's
# lock, and the old release's reads would wait for it).
FIELD = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "{previous}")]
    operations = [migrations.AddField("note", "field_{number}", {field})]
"""
FILL = """
import time

from django.db import migrations


def fill(apps, schema_editor):
    apps.get_model("notes", "Note").objects.update(field_{number}={value})
    time.sleep({seconds})


class Migration(migrations.Migration):
    dependencies = [("notes", "{previous}")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
"""
SAFE_FIELD = "models.CharField(max_length=20, null=True)"
UNSAFE_FIELD = "models.IntegerField(default=0)"


@dataclass(frozen=True)
class Round:
    label: str
    sent: int
    failed: int
    longest_gap: float
    slowest: float
    deploy_seconds: float
    steps: tuple[tuple[str, float], ...]


class Releases:
    """Releases of the example site, each with one more migration than the one before."""

    def __init__(self, layout: LabLayout, workspace: Path) -> None:
        self.layout = layout
        self.workspace = workspace
        self.migrations: dict[str, str] = {}

    def first(self) -> inventory.Host:
        return self._host("1.0.0")

    def with_migration(self, field: str, value: str) -> inventory.Host:
        """The next release, with a field of its own and a slow migration that fills it."""
        number = len(self.migrations) // 2 + 1
        previous = sorted(self.migrations)[-1].removesuffix(".py") if self.migrations else "0001_initial"
        added = f"{2 * number:04d}_field_{number}"
        self.migrations[f"{added}.py"] = FIELD.format(previous=previous, number=number, field=field)
        self.migrations[f"{2 * number + 1:04d}_fill_{number}.py"] = FILL.format(
            previous=added, number=number, value=value, seconds=MIGRATION_SECONDS
        )
        return self._host(f"zd-{number}")

    def _host(self, release: str) -> inventory.Host:
        source = release_source(self.workspace, release)
        for name, text in self.migrations.items():
            (source / "example_site" / "notes" / "migrations" / name).write_text(text)
        path = write_inventory(self.layout, self.workspace, release, exampleSource=str(source))
        return inventory.load(path).hosts["lab1"]


def deploy(host: inventory.Host) -> Result:
    [result] = fleet.deploy([host], Options(), QUIET)
    if not result.ok:
        raise SystemExit(f"deploy failed: {result.message}")
    return result


def under_load(host: inventory.Host, label: str) -> Round:
    """Deploy host's release while CLIENTS clients request the home page, one request after another each."""
    stop = threading.Event()
    lock = threading.Lock()
    # (sent, answered, succeeded) of every request.
    requests: list[tuple[float, float, bool]] = []

    def client() -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        while not stop.is_set() and time.monotonic() < deadline and len(requests) < LOAD_REQUESTS:
            sent = time.monotonic()
            try:
                ok = probe.request(host.address, "example.lab", "/", verify=False, timeout=10).status == 200
            except (OSError, ssl.SSLError):
                ok = False
            with lock:
                requests.append((sent, time.monotonic(), ok))
            time.sleep(0.02)

    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.monotonic()
    for worker in clients:
        worker.start()
    time.sleep(1)
    deploy_started = time.monotonic()
    result = deploy(host)
    deploy_seconds = time.monotonic() - deploy_started
    time.sleep(1)
    stop.set()
    for worker in clients:
        worker.join()
    ended = time.monotonic()
    answered = sorted(answer for _, answer, ok in requests if ok)
    moments = [started, *answered, ended]
    return Round(
        label,
        sent=len(requests),
        failed=sum(1 for *_, ok in requests if not ok),
        longest_gap=max(later - earlier for earlier, later in itertools.pairwise(moments)),
        slowest=max((answer - sent for sent, answer, _ in requests), default=0.0),
        deploy_seconds=deploy_seconds,
        steps=result.steps,
    )


def report(measured: Round) -> None:
    print(
        f"{measured.label}: {measured.sent} requests, {measured.failed} failed, longest time without a "
        f"successful answer {measured.longest_gap:.2f} s, slowest answer {measured.slowest:.2f} s, deploy "
        f"{measured.deploy_seconds:.1f} s"
    )
    for name, seconds in measured.steps:
        print(f"  {name}: {seconds:.2f} s")


def spread(label: str, values: list[float], unit: str = "") -> str:
    median = statistics.median(values)
    return f"{label} median {median:.2f}{unit} (spread {min(values):.2f} to {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    arguments = parser.parse_args()
    with lab_hosts(1) as layout, tempfile.TemporaryDirectory() as scratch:
        releases = Releases(layout, Path(scratch))
        deploy(releases.first())
        rounds = []
        for number in range(1, arguments.rounds + 1):
            host = releases.with_migration(SAFE_FIELD, "'x'")
            measured = under_load(host, f"safe migration, round {number}")
            report(measured)
            rounds.append(measured)
        print(
            f"{len(rounds)} rounds of a {MIGRATION_SECONDS} s migration applied before the switch: "
            + "; ".join(
                [
                    spread("failed requests", [float(r.failed) for r in rounds]),
                    spread("longest gap", [r.longest_gap for r in rounds], " s"),
                    spread("slowest answer", [r.slowest for r in rounds], " s"),
                    spread("deploy", [r.deploy_seconds for r in rounds], " s"),
                ]
            )
        )
        if not arguments.no_baseline:
            host = releases.with_migration(UNSAFE_FIELD, "1")
            report(under_load(host, "baseline: unsafe migration, run in the switch"))


if __name__ == "__main__":
    main()
