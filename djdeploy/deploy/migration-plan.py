# Run by djdeploy on a host with a release's own code, as `manage-<site> shell -c "$(cat this)"`: prints, as
# one line of JSON after the marker, the migrations that release would apply to the site's real database, in
# order, what each does that is unsafe while the old release still serves requests or cannot be reversed,
# and for each app that would move the migration it is at now (what `migrate <app> <name>` returns to).
# A site that has django-migration-linter among its INSTALLED_APPS also gets its report on each migration
# (with the site's own linter settings); the deployer reads it.
import contextlib
import io
import json

from django.apps import apps
from django.core.management import call_command
from django.db import connection, migrations
from django.db.migrations.executor import MigrationExecutor
from django.db.models.fields import NOT_PROVIDED

MARKER = "@@djdeploy-migration-plan "


def unsafe_reasons(operation):
    """Why an operation breaks the release that still runs while it applies (empty when it does not)."""
    if isinstance(operation, migrations.RemoveField):
        return [f"removes the field {operation.model_name}.{operation.name}"]
    if isinstance(operation, migrations.DeleteModel):
        return [f"deletes the model {operation.name}"]
    if isinstance(operation, migrations.RenameField):
        return [f"renames the field {operation.model_name}.{operation.old_name} to {operation.new_name}"]
    if isinstance(operation, migrations.RenameModel):
        return [f"renames the model {operation.old_name} to {operation.new_name}"]
    if isinstance(operation, migrations.AlterField):
        return [f"alters the field {operation.model_name}.{operation.name} (its type or constraints)"]
    if isinstance(operation, migrations.AddField):
        field = operation.field
        # Django drops the default it filled existing rows with: only a database default (db_default)
        # stays, so the old release's inserts, which leave the column out, fail.
        if (
            not field.null
            and not field.many_to_many
            and getattr(field, "db_default", NOT_PROVIDED) is NOT_PROVIDED
        ):
            return [
                f"adds the NOT NULL field {operation.model_name}.{operation.name} without a database default"
            ]
    return []


def irreversible_reasons(operation):
    if isinstance(operation, migrations.RunPython) and operation.reverse_code is None:
        return ["runs Python without reverse code"]
    if isinstance(operation, migrations.RunSQL) and operation.reverse_sql is None:
        return ["runs SQL without reverse SQL"]
    if not operation.reversible:
        return [f"{type(operation).__name__} cannot be reversed"]
    return []


def lint_report(migration):
    """What `lintmigrations <app> <name>` prints of the migration, or why it could not say."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            call_command("lintmigrations", migration.app_label, migration.name, "--no-cache")
    except SystemExit:
        pass  # its exit status 1 after errors: the report names them
    except Exception as error:  # a linter that fails leaves the built-in plan standing
        return {"failed": f"{type(error).__name__}: {error}"}
    return {"report": printed.getvalue()}


def main():
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    applied = set(executor.loader.applied_migrations)
    plan = executor.migration_plan(graph.leaf_nodes())
    linting = apps.is_installed("django_migration_linter")
    steps = []
    for migration, backwards in plan:
        if backwards:
            continue
        unsafe, irreversible = [], []
        for operation in migration.operations:
            unsafe += unsafe_reasons(operation)
            irreversible += irreversible_reasons(operation)
        step = {
            "app": migration.app_label,
            "name": migration.name,
            "unsafe": unsafe,
            "irreversible": irreversible,
        }
        if linting:
            step["lint"] = lint_report(migration)
        steps.append(step)
    moving = sorted({step["app"] for step in steps})
    now = {}
    for app in moving:
        at = [
            key for key in graph.forwards_plan(graph.leaf_nodes(app)[0]) if key in applied and key[0] == app
        ]
        now[app] = at[-1][1] if at else "zero"
    print(MARKER + json.dumps({"apply": steps, "now": now}))


main()
