"""Views of the site itself: the home page, a page to write a note, and the health check."""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from example_site.notes.forms import NoteForm
from example_site.notes.models import Note

logger = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    """Show the release and the latest notes (so the page needs a migrated database)."""
    context = {
        "release": settings.SITE_RELEASE,
        "notes": Note.objects.all()[:5],
    }
    return render(request, "example_site/home.html", context)


def new_note(request: HttpRequest) -> HttpResponse:
    """A form for a note (GET); a posted note is saved, then the home page shows it (POST, with CSRF)."""
    form = NoteForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        form.save()
        return redirect("home")
    status = 400 if form.is_bound else 200
    return render(request, "example_site/new_note.html", {"form": form}, status=status)


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer "ok" when the site can reach its database, status 500 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("Health check: the database is unreachable")
        return HttpResponse("database unreachable", status=500, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
