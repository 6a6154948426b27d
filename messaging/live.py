"""Live dashboard fragments: a domain event as the HTML that the WebSocket pushes and HTMX swaps in.

The same partials render in the full page, the HTMX answer and the push, so each fragment is the page's
own partial with `hx-swap-oob` so that htmx replaces the element with the same id.
"""

from django.template.loader import render_to_string


def render_event(*, event: str, device, data: dict) -> list[str]:
    """HTML fragments for one live event on `device`. `event` is a webhook-style name ("device.qr", ...)."""
    fragments = []
    if event in {"device.qr", "device.connected", "device.disconnected", "device.logged_out", "device.status", "device.pair_code"}:
        fragments.append(render_to_string("messaging/partials/device_status.html", {"device": device, "oob": True}))
        fragments.append(render_to_string("messaging/partials/device_link.html", {"device": device, "oob": True}))
    return fragments
