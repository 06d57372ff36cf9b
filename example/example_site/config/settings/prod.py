"""Production settings: HTTPS behind Caddy, which terminates TLS and proxies to gunicorn."""

from example_site.config.settings.base import *  # noqa: F403

DEBUG = False

# Caddy sets X-Forwarded-Proto (and drops a client's own) on every proxied request.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Caddy already redirects plain HTTP; this catches requests that reach gunicorn some other
# way. Health checks (straight to gunicorn's socket, without the header) stay on HTTP.
SECURE_SSL_REDIRECT = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
