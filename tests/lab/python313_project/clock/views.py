import platform

import django
from django.http import HttpResponse


def home(request):
    return HttpResponse(f"Python {platform.python_version()}, Django {django.get_version()}\n")
