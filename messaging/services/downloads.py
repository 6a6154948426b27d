"""A message's media file: kept under the type its bytes are, fetched from WhatsApp when not kept, and served
(to the dashboard and the API alike) so that it can never run on our origin.

A contact, or a member through /send/file, chooses a file's bytes, name and declared type. Served as it
says, an HTML, SVG, XML or PDF file would run its script with the rights of whoever opens its link. So a
stored file's type comes from its bytes (`media.identify`); only a picture, sound or film those bytes prove
is shown inline; everything else is an attachment; and every answer forbids sniffing and carries a sandbox
policy (no script, an opaque origin) should a browser render it anyway.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.http import FileResponse

from messaging import gateway
from messaging.services import media

# Served with every stored file: a browser that renders it anyway gives it no script and no origin.
DOWNLOAD_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)
# What the stored file is named on disk: only a type a browser may show keeps its own extension, so a
# server that serves the media folder by extension (Django's static view in DEBUG, a proxy) never serves
# HTML or a script from it.
STORED_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/wav": ".wav",
    "audio/webm": ".weba",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
}


class NoMedia(LookupError):
    """The message has no media, or its stored file is gone and WhatsApp no longer has it either."""


def stored_name(wa_id: str, mime: str) -> str:
    """The name a message's file is stored under (see STORED_EXTENSIONS)."""
    safe = "".join(c for c in wa_id if c.isalnum() or c in "-_")[:100] or "media"
    return safe + STORED_EXTENSIONS.get(mime, ".bin")


def offered_name(filename: str) -> str:
    """The sender's file name, fit for a Content-Disposition header: no folders, no control characters (a
    newline would make the answer a 500), not endless."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable()).strip()[:150]


def store_media(message, data: bytes) -> None:
    """Keep the bytes of a message's media, under the type they are (not the one the sender declared)."""
    from messaging.models import Message

    mime = media.identify(data, message.kind, message.media_filename)
    message.media.save(stored_name(message.wa_id, mime), ContentFile(data), save=False)
    message.media_mime = mime
    message.media_size = len(data)
    Message.objects.filter(pk=message.pk).update(
        media=message.media.name, media_mime=mime, media_size=message.media_size
    )


def media_file(device, message):
    """The message's media, opened for reading: the stored file, or else fetched from WhatsApp by its
    reference and stored. NoMedia when there is none; WhatsApp's errors (not connected, ...) pass through."""
    if message.media:
        try:
            return message.media.open("rb")
        except FileNotFoundError:
            pass  # cleaned up, or lost: WhatsApp may still have it
    ref = (message.payload or {}).get("media_ref")
    if not ref:
        raise NoMedia(
            "the stored file of this message is gone." if message.media else "this message has no media."
        )
    store_media(message, gateway.call(device, "download_media", ref=ref))
    return message.media.open("rb")


def media_response(message, file) -> FileResponse:
    """Serve an opened media file: inline only when its bytes are a picture, sound or film, else an
    attachment; never sniffed, always sandboxed. The type is read again from the bytes (a file stored before
    types came from bytes has its sender's word in `media_mime`)."""
    head = file.read(4096)
    file.seek(0)
    mime = media.identify(head, message.kind, message.media_filename)
    inline = mime in media.INLINE_TYPES
    filename = offered_name(message.media_filename) or stored_name(message.wa_id, mime)
    response = FileResponse(file, as_attachment=not inline, filename=filename, content_type=mime)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


def download(device, message) -> FileResponse:
    """The answer to a download of `message`'s media (dashboard and API): see `media_file`, `media_response`."""
    return media_response(message, media_file(device, message))
