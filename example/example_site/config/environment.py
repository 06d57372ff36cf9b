"""Read the settings a deployment passes through environment variables."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

POSTGRESQL_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})


def required(name: str) -> str:
    """Return the value of a variable that must be set and not empty."""
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} must be set.")
    return value


def flag(name: str) -> bool:
    """Return True when a variable is set to 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hostnames(value: str) -> list[str]:
    """Split a list of hostnames separated by new lines or other white space."""
    return value.split()


def trusted_origins(hosts: list[str]) -> list[str]:
    """Return the HTTPS origins of `hosts`, in the form CSRF_TRUSTED_ORIGINS expects."""
    origins = []
    for host in hosts:
        if host == "*":
            continue
        # ALLOWED_HOSTS spells "any subdomain" as a leading dot, origins as "*.".
        origins.append(f"https://*{host}" if host.startswith(".") else f"https://{host}")
    return origins


def database_from_url(url: str) -> dict[str, object]:
    """Turn a database URL into one entry of Django's DATABASES setting.

    Understood forms (those of dj-database-url, which many sites use):
    `postgresql:///name` (local socket, peer authentication),
    `postgresql://user:password@host:port/name?sslmode=require` (query parameters go to
    the driver), `sqlite:////absolute/path`, `sqlite:///relative/path` and
    `sqlite://:memory:`.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # The path keeps one slash of the URL's "///": drop it, leaving "/" for absolute paths.
        name = unquote(parts.path[1:]) if parts.path else ""
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or parts.netloc or ":memory:",
        }
    if parts.scheme in POSTGRESQL_SCHEMES:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": _host(parts.netloc),
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL has the scheme {parts.scheme!r}; use postgresql:// or sqlite://."
    )


def _host(netloc: str) -> str:
    """Return the host of a URL's network location, unquoted so it may be a socket directory."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return unquote(host.partition(":")[0])
