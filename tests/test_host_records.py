"""The host's records as the deployer reads them back: deploy log lines, lock owners, the facts line."""

from __future__ import annotations

import json
from pathlib import Path

from djdeploy.host import system as host_system
from djdeploy.host.lock import LockOwner
from djdeploy.host.records import Action, DeployRecord, RecordOutcome

SYSTEM = "/nix/store/" + "a" * 32 + "-nixos-system-web1"


def test_a_record_reads_back_as_it_was_written() -> None:
    record = DeployRecord(
        id="20261123T000000-abcdef",
        user="jane",
        machine="laptop",
        commit="abc1234",
        started="2026-11-23T00:00:00+00:00",
        system=SYSTEM,
        action=Action.ROLLBACK,
        finished="2026-11-23T00:00:09+00:00",
        generation=12,
        outcome=RecordOutcome.ROLLED_BACK,
        reason="the health check failed",
    )
    assert DeployRecord.parse(record.to_json()) == record


def test_lines_that_are_not_records_are_none_and_old_records_are_deploys() -> None:
    assert DeployRecord.parse("{cut off") is None
    assert DeployRecord.parse("[1, 2]") is None
    assert DeployRecord.parse(json.dumps({"outcome": "exploded"})) is None
    old = DeployRecord.parse(json.dumps({"user": "ann", "commit": None, "generation": "3"}))
    assert old is not None
    assert (old.action, old.user, old.commit, old.generation, old.outcome) == (
        Action.DEPLOY,
        "ann",
        "",
        3,
        None,
    )


def test_lock_owners_read_back_and_an_unreadable_one_is_unknown() -> None:
    owner = LockOwner("jane", "laptop", "2026-11-23T00:00:00+00:00", "deploy x", "token")
    assert LockOwner.parse(owner.to_json()) == owner
    assert owner.describe() == "jane@laptop since 2026-11-23T00:00:00+00:00 (deploy x)"
    assert LockOwner.parse("{}").describe().startswith("an unknown deployer")
    assert LockOwner.parse("not json") == LockOwner()


def test_facts_of_a_host_without_a_profile_or_lock() -> None:
    facts = host_system.parse_facts("\n\n\n\n\n")
    assert facts == host_system.Facts(None, None, None, None)
    assert not facts.runs_profile


def test_facts_of_a_profile_set_by_hand_have_no_generation() -> None:
    facts = host_system.parse_facts(f"{SYSTEM}\n{SYSTEM}\n{SYSTEM}\n\n{{}}")
    assert facts.profile_system == Path(SYSTEM)
    assert facts.generation is None
    assert facts.runs_profile
    assert facts.lock == LockOwner()
