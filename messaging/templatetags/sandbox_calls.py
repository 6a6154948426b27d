"""The simulated phone's call log: the latest calls of simulated contacts to a number, as the callers saw them."""

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def sandbox_calls(device) -> list[dict]:
    """Calls to `device`'s number on the simulated network (ringing or declined, with the reply), newest first;
    [] off the sandbox backend or for a number not linked yet."""
    if getattr(settings, "WA_BACKEND", "") != "sandbox" or not getattr(device, "phone", ""):
        return []
    from messaging.whatsapp.sandbox import calls_to

    try:
        return calls_to(device.phone, limit=5)
    except Exception:  # the page shows without the log rather than fail
        return []
