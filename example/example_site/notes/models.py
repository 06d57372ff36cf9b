"""Models of the notes application."""

from django.db import models


class Note(models.Model):
    """A short text written in the admin."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return str(self.title)
