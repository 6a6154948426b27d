"""Template helpers of the dashboard: `{% sandbox_enabled as flag %}` (is the simulated network the backend)."""

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def sandbox_enabled() -> bool:
    return getattr(settings, "WA_BACKEND", "") == "sandbox"
