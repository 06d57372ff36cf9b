"""Settings read from what a deployment sets: SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS, STATIC_ROOT."""

import os
from urllib.parse import urlsplit

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "").split()
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.staticfiles", "clock"]
ROOT_URLCONF = "clock.urls"
WSGI_APPLICATION = "clock.wsgi.application"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT")

_database = urlsplit(os.environ["DATABASE_URL"])
if _database.scheme == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _database.path.lstrip("/"),
            "HOST": _database.hostname or "",
            "USER": _database.username or "",
        }
    }
