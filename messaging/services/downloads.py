"""A message's media file: kept under the type its bytes are, fetched from WhatsApp when not kept, and served
(to the dashboard and the API alike) so that it can never run on our origin.

A contact, or a member through /send/file, chooses a file's bytes, name and declared type. Served as it
says, an HTML, SVG, XML or PDF file would run its script with the rights of whoever opens its link. So a
stored file's type comes from its bytes (`media.identify`); only a picture, sound or film those bytes prove
is shown inline; everything else is an attachment; and every answer forbids sniffing and carries a sandbox
policy (no script, an opaque origin) should a browser render it anyway.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
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


def shows_inline(mime: str) -> bool:
    """Whether a file of this type (read from its bytes) is served inline: a picture, sound or film; the
    dashboard shows a thumbnail or a player only for those."""
    return mime in media.INLINE_TYPES


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


class StreamedFileResponse(FileResponse):
    """A FileResponse that an ASGI server streams: Django would read a file's (sync) chunks all into memory
    first (`sync_to_async(list)`), so each chunk is read in a thread of its own as it is sent instead."""

    async def __aiter__(self):
        chunks = iter(self.streaming_content)
        end = object()
        while (chunk := await sync_to_async(next, thread_sensitive=False)(chunks, end)) is not end:
            yield chunk


class ObjectStream:
    """An object of an S3-compatible store, read as it is served. django-storages' S3File would first copy it
    whole into memory (a SpooledTemporaryFile that, by default, never rolls over to disk)."""

    def __init__(self, s3_file):
        answer = s3_file.obj.get()
        self._body = answer["Body"]
        self.size = answer.get("ContentLength")
        self.name = s3_file.name

    def read(self, size: int = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        self._body.close()


class Rest:
    """The rest of a file whose first bytes were read already (to type it), for a store that cannot seek."""

    def __init__(self, head: bytes, file):
        self._head = head
        self._file = file

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                head, self._head = self._head, b""
                return head + self._file.read()
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


def _open_stored(field_file):
    """The stored file opened for reading, as a stream where the store is remote (see ObjectStream)."""
    opened = field_file.open("rb").file
    return ObjectStream(opened) if hasattr(opened, "obj") else field_file


def media_file(device, message):
    """The message's media, opened for reading: the stored file, or else fetched from WhatsApp by its
    reference and stored. NoMedia when there is none; WhatsApp's errors (not connected, ...) pass through."""
    if message.media:
        try:
            return _open_stored(message.media)
        except FileNotFoundError:
            pass  # cleaned up, or lost: WhatsApp may still have it
    ref = (message.payload or {}).get("media_ref")
    if not ref and (message.payload or {}).get("media_expired_at"):
        raise NoMedia("the file of this message expired (kept for MEDIA_RETENTION_DAYS).")
    if not ref:
        raise NoMedia(
            "the stored file of this message is gone." if message.media else "this message has no media."
        )
    store_media(message, gateway.call(device, "download_media", ref=ref))
    return _open_stored(message.media)


def media_response(message, file) -> FileResponse:
    """Serve an opened media file: inline only when its bytes are a picture, sound or film, else an
    attachment; never sniffed, always sandboxed. The type is read again from the bytes (a file stored before
    types came from bytes has its sender's word in `media_mime`)."""
    head = file.read(4096)
    mime = media.identify(head, message.kind, message.media_filename)
    inline = shows_inline(mime)
    filename = offered_name(message.media_filename) or stored_name(message.wa_id, mime)
    size = getattr(file, "size", None)
    if isinstance(file, ObjectStream):
        body = Rest(head, file)
    else:
        file.seek(0)
        body = file
    response = StreamedFileResponse(body, as_attachment=not inline, filename=filename, content_type=mime)
    if size is not None and "Content-Length" not in response:
        response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


def download(device, message) -> FileResponse:
    """The answer to a download of `message`'s media (dashboard and API): see `media_file`, `media_response`."""
    return media_response(message, media_file(device, message))
