"""ASGI entry point for gunicorn with uvicorn's workers (`example_site.config.asgi:application`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.config.settings.base")

application = get_asgi_application()
