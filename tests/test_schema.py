"""The facts a deploy that migrates leaves in its activation's directory, for the supervisor's rollback."""

from __future__ import annotations

from pathlib import Path

from djdeploy.deploy import schema
from djdeploy.deploy.migrations import Migration, SitePlan
from djdeploy.host.records import RecordedBackup
from djdeploy.inventory import DatabaseRollback
from tests.test_migrations import SITE, SYSTEM

PLAN = SitePlan(
    "example",
    (Migration("notes", "0002_colour"), Migration("shop", "0001_initial", irreversible=("runs SQL",))),
    (("notes", "0001_initial"), ("shop", "zero")),
)
DUMP = RecordedBackup("example", "20261123T000000Z-before-deploy.dump", 1000, 0.1)


def test_the_facts_name_the_new_code_the_targets_and_the_dump() -> None:
    files = schema.activation_files(
        "web1", DatabaseRollback.RESTORE, system=SYSTEM, sites=[SITE], plans=[PLAN], backups=[DUMP]
    )
    assert set(files) == {"schema", "schema-rollback.sh", "db.sh"}
    assert files["schema"].splitlines() == [
        "policy restore",
        "host web1",
        "site example",
        f"manage {SYSTEM}/sw/bin/manage-example",
        "database example example",
        "backups /var/backup/djdeploy/example",
        "units gunicorn-example.socket gunicorn-example.service",
        "backup 20261123T000000Z-before-deploy.dump",
        "apply notes.0002_colour",
        "apply shop.0001_initial",
        "target notes 0001_initial",
        "target shop zero",
        "irreversible shop.0001_initial",
        "end",
    ]


def test_a_deploy_that_migrates_nothing_leaves_no_files() -> None:
    empty = SitePlan("example", (), ())
    files = schema.activation_files(
        "web1", DatabaseRollback.REVERSE, system=Path("/nix/store/x"), sites=[SITE], plans=[empty], backups=[]
    )
    assert files == {}


def test_a_rollback_reads_the_facts_of_the_deploy_it_undoes() -> None:
    command = schema.of_deploy_command(5, 4)
    assert command.startswith("found=; for folder in /run/djdeploy/activations/*; do ")
    assert '= 5 ] && [ "$(cat "$folder/previous" 2>/dev/null)" = 4 ]' in command
    assert command.endswith('[ -z "$found" ] || cat "$found/schema"')
