"""URL configuration."""

from django.contrib import admin
from django.urls import path

from example_site import views

urlpatterns = [
    path("", views.home, name="home"),
    path("notes/new", views.new_note, name="new_note"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
