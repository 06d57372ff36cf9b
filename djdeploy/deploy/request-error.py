# Run by djdeploy on a host as `manage-<site> shell -c "$(cat this)"` followed by a call of explain(), when
# the site answered its health check with 500: makes the same request in the site's Django and prints, as one
# line of JSON after the marker, the end of the exception's traceback and, when the exception is that of a
# static file missing from the manifest of the collected files, that file's name.
import json
import re
import traceback

from django.test import Client

MARKER = "@@djdeploy-request-error "
TRACEBACK_LINES = 6


def explain(host, path, secure):
    client = Client(raise_request_exception=True, HTTP_HOST=host)
    try:
        client.get(path, secure=secure)
    except Exception as error:  # whichever the site raised is the answer
        lines = "".join(traceback.format_exception(error)).rstrip().splitlines()
        missing = re.search(r"Missing staticfiles manifest entry for '([^']*)'", str(error))
        answer = {
            "traceback": "\n".join(lines[-TRACEBACK_LINES:]),
            "missing_static": missing.group(1) if missing else "",
        }
        print(MARKER + json.dumps(answer))
