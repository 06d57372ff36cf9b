"""Admin registration of the notes application."""

from django.contrib import admin

from example_site.notes.models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("title", "created_at")
    search_fields = ("title", "body")
