"""What a site's failed unit says, as the change that fixes it: the common failures of a project's first
deploy, read from the end of the unit's journal (the migrations at activation, gunicorn at the first request).

Only Django's and gunicorn's own wording is read; a journal that matches none of it is shown as it is.
"""

from __future__ import annotations

import re

# Django's system check of CSRF_TRUSTED_ORIGINS (django/core/checks/compatibility/django_4_0.py).
_ORIGIN_WITHOUT_SCHEME = re.compile(
    r"\(4_0\.E001\).*CSRF_TRUSTED_ORIGINS setting must start with a scheme.*"
    r"but found (\S+?)\.(?: |$)"
)
_SYSTEM_CHECK = re.compile(r"^\s*(\S*: \(\w+\.E\d+\) .*)$", re.MULTILINE)
# django-environ's ImproperlyConfigured, and os.environ[NAME] (a name in capitals: a view's KeyError is none).
_VARIABLE = re.compile(
    r"Set the ([A-Za-z_]\w*) environment variable|^KeyError: '([A-Z_][A-Z0-9_]*)'", re.MULTILINE
)
# gunicorn's answers when the application named on its command line cannot be loaded (gunicorn/util.py).
_NO_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([\w.]+)'", re.MULTILINE)
_NO_APPLICATION = re.compile(r"Failed to find attribute '(\w+)' in '([\w.]+)'")
_EXCEPTION = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Configured)): (.*)$", re.MULTILINE)


def cause(unit: str, journal: str) -> str | None:
    """One paragraph: what the journal says happened and what to change; None when it is not recognised."""
    origin = _ORIGIN_WITHOUT_SCHEME.search(journal)
    if origin:
        return (
            f"CSRF_TRUSTED_ORIGINS in the site's settings holds '{origin.group(1)}' without its scheme, "
            "which Django refuses since 4.0 (system check 4_0.E001, run before the migrations): write "
            f"'https://{origin.group(1)}' (http:// for a site on port 80)."
        )
    checks = _SYSTEM_CHECK.findall(journal)
    if "SystemCheckError" in journal and checks:
        return (
            "Django's system checks refused the site's settings before the migrations ran: "
            f"{' '.join(checks)} Fix these settings; `djdeploy manage HOST check` runs the same checks."
        )
    variable = _VARIABLE.search(journal)
    if variable:
        name = variable.group(1) or variable.group(2)
        return (
            f"the site's settings need the environment variable {name}: set it in the site's extraEnv, or in "
            "a file of extraEnvFiles if it is a secret."
        )
    application = _NO_APPLICATION.search(journal)
    if unit.startswith("gunicorn-") and application:
        return (
            f"gunicorn imported the WSGI module {application.group(2)} but found no "
            f"'{application.group(1)}' in it: the module that wsgiModule names must define it, as "
            "`application = get_wsgi_application()`."
        )
    module = _NO_MODULE.search(journal)
    if unit.startswith("gunicorn-") and module:
        return (
            f"gunicorn could not import the WSGI application: there is no module '{module.group(1)}' on the "
            "site's path (the project's own directory, then its dependencies). Set wsgiModule to the dotted "
            "path of the project's wsgi module, as Python imports it from the directory of manage.py."
        )
    exception = _EXCEPTION.findall(journal)
    if "Traceback (most recent call last)" in journal and exception:
        kind, message = exception[-1]
        return f"it raised {kind}: {message} (the traceback's last lines are below)."
    return None
