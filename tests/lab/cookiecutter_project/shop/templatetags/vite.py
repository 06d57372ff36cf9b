"""{% vite_asset "src/main.js" %}: the built file of a Vite entry, read from the build's manifest.json."""

import json

from django import template
from django.contrib.staticfiles.storage import staticfiles_storage
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def vite_asset(entry):
    with staticfiles_storage.open("manifest.json") as manifest:
        chunk = json.load(manifest)[entry]
    return format_html('<script type="module" src="{}"></script>', static(chunk["file"]))
