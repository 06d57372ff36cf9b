"""Forms of the notes application."""

from django import forms

from example_site.notes.models import Note


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ("title", "body")
