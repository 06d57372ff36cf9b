"""The supervisor script's end, run by /bin/sh: the deploy log's line, the lock, and a rollback that leaves
alone a generation another deploy made. nix-env and the systems are small scripts in a temporary profile."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from djdeploy.deploy import schema, supervisor
from djdeploy.deploy.migrations import Migration, SitePlan
from djdeploy.host.records import Action, DeployRecord, RecordedBackup, RecordOutcome
from djdeploy.inventory import DatabaseRollback
from tests.test_migrations import SITE

TOKEN = "20261123T000000-abcdef"
FIXED = DeployRecord(
    id=TOKEN,
    user="jane",
    machine="laptop",
    commit="abc1234",
    started="2026-11-23T00:00:00+00:00",
    system="/nix/store/" + "b" * 32 + "-system",
    action=Action.DEPLOY,
)


@dataclass(frozen=True)
class Host:
    """A temporary host: the activation's directory, the profile with its generations, log, lock."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / "activations" / TOKEN

    @property
    def profile(self) -> Path:
        return self.root / "profiles" / "system"

    @property
    def log(self) -> Path:
        return self.root / "deploys.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def run(self, commands: str) -> subprocess.CompletedProcess[str]:
        """The script's definitions (everything before its first lock), then commands, as the supervisor."""
        definitions = supervisor.SUPERVISOR.split("# Waiters sleep on these locks", 1)[0]
        arguments = [self.dir, self.profile, "/nix/store/new", "new", "25", self.log, self.lock]
        argv = [*map(str, arguments), str(self.root / "switch.lock")]
        script = f"{definitions}\nexec 7> {shlex.quote(argv[-1])}\n{commands}\n"
        path = f"{self.root / 'bin'}:{os.environ['PATH']}"
        return subprocess.run(
            ["sh", "-c", script, "djdeploy-activate", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PATH": path},
        )

    def records(self) -> list[DeployRecord]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [record for record in map(DeployRecord.parse, lines) if record is not None]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    """Generations 1 and 2 (the profile on 2); nix-env switches the link and notes each call."""
    made = Host(tmp_path)
    made.dir.mkdir(parents=True)
    (made.dir / "record.json").write_text(FIXED.fixed_json() + "\n")
    for number in (1, 2):
        system = made.profile.parent / f"system-{number}-link"
        (system / "bin").mkdir(parents=True)
        switch = system / "bin" / "switch-to-configuration"
        switch.write_text(f'#!/bin/sh\necho "generation {number}: $1"\n')
        switch.chmod(0o755)
    made.profile.symlink_to("system-2-link")
    (tmp_path / "bin").mkdir()
    nix_env = tmp_path / "bin" / "nix-env"
    nix_env.write_text(
        '#!/bin/sh\necho "$@" >> "$(dirname "$0")/nix-env.calls"\n'
        '[ "$3" = --switch-generation ] && ln -sfn "system-$4-link" "$2"\ntrue\n'
    )
    nix_env.chmod(0o755)
    return made


def hold_lock(host: Host, token: str) -> None:
    host.lock.mkdir()
    (host.lock / "owner.json").write_text(json.dumps({"user": "jane", "id": token}) + "\n")


def test_a_rollback_is_recorded_in_the_deploy_log_and_releases_its_own_lock(host: Host) -> None:
    hold_lock(host, TOKEN)
    reason = 'the health check failed: "/" answered 500\nand more'
    done = host.run(f"generation=2 previous=1\nroll_back {shlex.quote(reason)}")
    assert done.returncode == 1, done.stderr
    assert (host.dir / "state").read_text() == "rolled-back\n"
    assert os.readlink(host.profile) == "system-1-link"
    assert "generation 1: switch" in (host.dir / "rollback.log").read_text()
    [record] = host.records()
    assert record.outcome is RecordOutcome.ROLLED_BACK
    assert record.generation == 1  # the generation the host runs again
    assert record.reason == 'the health check failed: "/" answered 500 and more'
    assert (record.id, record.user, record.commit, record.system) == (TOKEN, "jane", "abc1234", FIXED.system)
    assert record.finished.endswith("+00:00")
    assert not host.lock.exists()


def test_a_lock_taken_again_by_another_deploy_is_left_alone(host: Host) -> None:
    hold_lock(host, "20261123T010000-123456")
    done = host.run("generation=2 previous=1\nfinish confirmed success 2")
    assert done.returncode == 0, done.stderr
    assert [(r.outcome, r.generation) for r in host.records()] == [(RecordOutcome.SUCCESS, 2)]
    assert host.lock.exists()


def test_a_rollback_never_switches_away_from_a_generation_another_deploy_made(host: Host) -> None:
    # This supervisor made generation 2; since then another deploy made generation 3 and the profile points
    # at it: the old supervisor's confirmation window ends.
    (host.profile.parent / "system-3-link").symlink_to("system-2-link")
    host.profile.unlink()
    host.profile.symlink_to("system-3-link")
    done = host.run("generation=2 previous=1\nroll_back 'no confirmation from the deployer within 25 s'")
    assert done.returncode == 1, done.stderr
    assert (host.dir / "state").read_text() == "superseded\n"
    assert os.readlink(host.profile) == "system-3-link"
    assert not (host.root / "bin" / "nix-env.calls").exists()  # nothing was switched
    [record] = host.records()
    assert record.outcome is RecordOutcome.SUPERSEDED
    assert record.reason == (
        "no confirmation from the deployer within 25 s; generation 3 was left alone: another deploy made it "
        "since"
    )


def test_a_rollback_waits_for_the_host_wide_switch_lock(host: Host) -> None:
    # Another supervisor switches the host: this one's rollback waits for it (here, for 1 s only).
    holder = subprocess.Popen(["flock", str(host.root / "switch.lock"), "sleep", "30"])
    try:
        done = host.run("switch_lock_seconds=1\ngeneration=2 previous=1\nroll_back 'rejected'")
    finally:
        holder.kill()
        holder.wait()
    assert (host.dir / "state").read_text() == "rollback-failed\n"
    assert os.readlink(host.profile) == "system-2-link"
    [record] = host.records()
    assert record.outcome is RecordOutcome.ROLLBACK_FAILED
    assert "the rollback did not start: another activation held" in record.reason
    assert done.returncode == 1


def test_a_rejection_wins_over_a_confirmation_that_came_with_it() -> None:
    script = supervisor.SUPERVISOR
    assert script.index('if [ -e "$dir/rejected" ]; then\n    roll_back') < script.index(
        'if [ -e "$dir/confirmed" ]; then'
    )


def migrating_deploy(host: Host, manage: str, *, irreversible: bool = False) -> None:
    """The facts a deploy that applies notes.0002_colour leaves, with a fake manage-example of the new
    release that notes its calls beside nix-env's and answers as `manage`'s body says."""
    new = host.root / "new"
    (new / "sw" / "bin").mkdir(parents=True)
    command = new / "sw" / "bin" / "manage-example"
    command.write_text(f'#!/bin/sh\necho "manage $*" >> {host.root}/bin/nix-env.calls\n{manage}\n')
    command.chmod(0o755)
    colour = Migration("notes", "0002_colour", irreversible=("runs Python",) if irreversible else ())
    plan = SitePlan("example", (colour,), (("notes", "0001_initial"),))
    dump = RecordedBackup("example", "20261123T000000Z-before-deploy.dump", 1000, 0.1)
    files = schema.activation_files(
        "web1", DatabaseRollback.REVERSE, system=new, sites=[SITE], plans=[plan], backups=[dump]
    )
    for name, text in files.items():
        (host.dir / name).write_text(text)


def test_a_rollback_unapplies_with_the_new_code_before_it_switches_back(host: Host) -> None:
    migrating_deploy(host, "true")
    done = host.run("generation=2 previous=1\nroll_back 'the health check failed'")
    assert done.returncode == 1, done.stderr
    calls = (host.root / "bin" / "nix-env.calls").read_text().splitlines()
    assert calls[0] == "manage migrate --noinput notes 0001_initial"
    assert calls[1].endswith("--switch-generation 1")
    [record] = host.records()
    assert record.outcome is RecordOutcome.ROLLED_BACK
    assert record.reason == (
        "the health check failed; example: unapplied notes.0002_colour with the code of the new release "
        "(migrate notes 0001_initial)"
    )


def test_a_migration_that_cannot_be_unapplied_stays_and_the_reason_names_the_dump(host: Host) -> None:
    migrating_deploy(
        host,
        "case $1 in migrate) exit 1 ;; "
        'showmigrations) printf "[X]  notes.0001_initial\\n[X]  notes.0002_colour\\n" ;; esac',
        irreversible=True,
    )
    done = host.run("generation=2 previous=1\nroll_back 'the health check failed'")
    assert done.returncode == 1, done.stderr
    assert os.readlink(host.profile) == "system-1-link"  # the code goes back all the same
    [record] = host.records()
    assert record.reason == (
        "the health check failed; example: notes.0002_colour cannot be unapplied, so its schema stays ahead "
        "of the old code: notes.0002_colour stay applied; the data from before the deploy is in "
        "20261123T000000Z-before-deploy.dump: `djdeploy db.restore web1 --site example --backup "
        "20261123T000000Z-before-deploy.dump`"
    )
