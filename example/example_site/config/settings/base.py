"""Settings for every environment, read from the variables a deployment sets.

DJANGO_SETTINGS_MODULE, SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS (hostnames separated by new
lines or spaces), MEDIA_ROOT, MEDIA_URL, STATIC_ROOT and STATIC_URL come from djdeploy (and
from the older django.nix module); DJANGO_DEBUG=1 turns on debugging for development and
SITE_RELEASE overrides the release shown on the home page.
"""

import os

from example_site.config.environment import (
    database_from_url,
    flag,
    hostnames,
    required,
    trusted_origins,
)
from example_site.release import RELEASE

SECRET_KEY = required("SECRET_KEY")
DEBUG = flag("DJANGO_DEBUG")
ALLOWED_HOSTS = hostnames(os.environ.get("ALLOWED_HOSTS", ""))
CSRF_TRUSTED_ORIGINS = trusted_origins(ALLOWED_HOSTS)

SITE_RELEASE = os.environ.get("SITE_RELEASE") or RELEASE

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "example_site",
    "example_site.notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_site.config.urls"
WSGI_APPLICATION = "example_site.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(required("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = os.environ.get("STATIC_URL", "/static/")
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed file names outside development: the static files are served from a store
    # path whose files all have the same modification time, so a changed file needs a new
    # name to be fetched again. They need collectstatic's manifest, hence not when debugging.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage."
        + ("StaticFilesStorage" if DEBUG else "ManifestStaticFilesStorage"),
    },
}

# Errors reach gunicorn's standard error, hence the journal.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
