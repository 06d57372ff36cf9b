"""Release of this code, shown on the home page unless SITE_RELEASE overrides it.

Bump it with every change that is deployed, so that a new build shows on the page.
"""

RELEASE = "1.0.0"
