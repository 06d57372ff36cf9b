"""Application configuration."""

from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "example_site.notes"
    verbose_name = "Notes"
