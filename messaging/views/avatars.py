"""The picture of a chat or a person, for the dashboard's avatars: asked of WhatsApp once an hour at most.

An avatar is decoration: whatever goes wrong (the number offline, no picture, a hidden one), the answer is an
image, a transparent pixel, so the initials beneath it show and nothing looks broken. A picture on WhatsApp's
servers is a redirect to it (the page's policy allows images from *.whatsapp.net); one the backend hands over
as a data: URL (the sandbox) is served from here, as the picture type its bytes are.
"""

from __future__ import annotations

import base64
import logging

from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from accounts.tenancy import member_required
from messaging import gateway
from messaging.models import DeviceStatus
from messaging.services import media
from messaging.views.common import org_device
from messaging.whatsapp import protocol

logger = logging.getLogger(__name__)

FOUND_SECONDS = 3600  # WhatsApp's picture links last longer than this
MISSING_SECONDS = 300  # no picture, or the number was not reachable: ask again a little later
PICTURE_TYPES = {"image/jpeg", "image/png", "image/webp"}
# A 1x1 transparent GIF.
NOTHING = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _picture(device, jid: str) -> str:
    """The picture's URL ("" for none), cached per number and JID (a group's picture depends on who asks)."""
    key = f"avatar:{device.pk}:{jid}"
    url = cache.get(key)
    if url is None:
        try:
            found = gateway.call(device, "avatar", jid=jid, preview=True)
        except Exception:  # noqa: BLE001 - offline, hidden, unknown: the initials do
            logger.debug("no avatar of %s through device %s", jid, device.pk, exc_info=True)
            found = None
        url = (found.url if found is not None else "") or ""
        cache.set(key, url, FOUND_SECONDS if url else MISSING_SECONDS)
    return url


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
    url = _picture(device, jid) if reachable else ""
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
