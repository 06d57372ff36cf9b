"""django-migration-linter's report on one migration, as `lintmigrations <app> <name>` prints it.

A site opts in by installing the linter and adding it to its INSTALLED_APPS; migration-plan.py then runs the
command for each migration a release would apply, with the site's own linter settings, and passes on what it
printed: a line `(app, name)... RESULT` (OK, ERR, WARNING, IGNORE or "OK (ignored)"), then one indented line
per finding, then a summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_RESULT = re.compile(r"^\([^,()]+, [^()]+\)\.\.\. (?P<result>.+)$")
# Results whose indented lines count: under ERR the linter lists the errors, then the warnings, in one list
# that cannot be told apart, so all of them count as errors; an "OK (ignored)" lists what the user ignored.
_COUNTED = {"ERR": "errors", "WARNING": "warnings"}


@dataclass(frozen=True)
class Findings:
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse(answer: Mapping[str, str]) -> Findings:
    """The findings in the plan script's answer for one migration: {"report": what the linter printed} or
    {"failed": why it could not run}, which becomes a warning (the built-in plan still stands)."""
    if "failed" in answer:
        return Findings(warnings=(f"django-migration-linter failed: {answer['failed']}",))
    found: dict[str, list[str]] = {"errors": [], "warnings": []}
    counted: str | None = None
    for line in answer.get("report", "").splitlines():
        result = _RESULT.match(line)
        if result:
            counted = _COUNTED.get(result["result"].strip())
        elif counted and line.startswith("\t") and line.strip():
            found[counted].append(f"django-migration-linter: {line.strip()}")
        elif not line.startswith("\t"):
            counted = None  # the summary
    return Findings(tuple(found["errors"]), tuple(found["warnings"]))
