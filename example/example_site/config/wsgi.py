"""WSGI entry point for gunicorn (`example_site.config.wsgi:application`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.config.settings.base")

application = get_wsgi_application()
