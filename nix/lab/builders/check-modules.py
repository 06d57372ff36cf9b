"""Checks that a site can import what its configuration needs, and names each missing package with the
line that adds it. django-site.sh runs it with the site's interpreter.

argv[1]: JSON, a list of {"modules": [...], "line": "...", "neededBy": "..."}; any one module will do.
"""

import importlib.util
import json
import sys


def main() -> int:
    needs = json.loads(sys.argv[1])
    missing = [need for need in needs if not any(importlib.util.find_spec(m) for m in need["modules"])]
    for need in missing:
        print(
            f"error: {need['neededBy']} needs {need['modules'][0]}, which the site's dependencies lack: "
            f"add the line `{need['line']}` (or the version you test with) to the project's requirements "
            "file, or add the package to its Poetry or uv project and lock again",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
