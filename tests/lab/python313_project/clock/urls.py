from django.urls import path

from clock.views import home

urlpatterns = [path("", home)]
