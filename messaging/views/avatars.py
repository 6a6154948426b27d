"""The picture of a chat or a person, for the dashboard's avatars: asked of WhatsApp once an hour at most.

An avatar is decoration: whatever goes wrong (the number offline, no picture, a hidden one), the answer is an
image, a transparent pixel, so the initials beneath it show and nothing looks broken. A picture on WhatsApp's
servers is a redirect to it (the page's policy allows images from *.whatsapp.net); one the backend hands over
as a data: URL (the sandbox) is served from here, as the picture type its bytes are.
"""

from __future__ import annotations

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from accounts.tenancy import member_required
from messaging.models import DeviceStatus
from messaging.services import media, profile
from messaging.views.common import org_device
from messaging.whatsapp import protocol

FOUND_SECONDS = profile.PICTURE_FOUND_SECONDS
MISSING_SECONDS = profile.PICTURE_MISSING_SECONDS
PICTURE_TYPES = {"image/jpeg", "image/png", "image/webp"}
# A 1x1 transparent GIF.
NOTHING = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _image(data: bytes, mime: str, seconds: int) -> HttpResponse:
    response = HttpResponse(data, content_type=mime)
    response["Cache-Control"] = f"private, max-age={seconds}"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@member_required()
@require_GET
def avatar(request, device_id: int, jid: str):
    device = org_device(request, device_id)
    try:
        jid = protocol.normalize_jid(jid)
    except ValueError:
        raise Http404("Not a WhatsApp ID.") from None
    # A number not connected, or that no session worker holds now, cannot ask: no page waits on a worker for
    # pictures (and nothing is cached: they come once it is back).
    lease = getattr(device, "lease", None)
    reachable = device.status == DeviceStatus.CONNECTED and lease is not None and lease.is_live
    url = profile.picture_url(organization=request.organization, device=device, jid=jid) if reachable else ""
    if url.startswith("https://") and url.split("/", 3)[2].endswith(".whatsapp.net"):
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = f"private, max-age={FOUND_SECONDS}"
        return response
    if url.startswith("data:") and ";base64," in url:
        try:
            data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        except ValueError:
            data = b""
        mime = media.identify(data, "image", "") if data else ""
        if mime in PICTURE_TYPES:
            return _image(data, mime, FOUND_SECONDS)
    return _image(NOTHING, "image/gif", MISSING_SECONDS)
