"""What a file may be to be sent, or set as a profile or group picture: one rule for the API and the dashboard.

A size limit per kind (WhatsApp's own; settings.API_MEDIA_MAX_BYTES overrides any of them) and a type read
from the file's first bytes: a declared content type is not trusted. `check` refuses with `MediaRefused`,
whose `reason` each caller words in its own way (the API in English with its codes, the dashboard in the
user's language next to the field).

A file to check may be bytes or a file object (an upload Django spooled to disk, a fetched URL in a temporary
file): only its first bytes are read, and its size is asked of it, so a 100 MB document is never in memory.
"""

from __future__ import annotations

import mimetypes

from django.conf import settings

MB = 1024 * 1024
HEAD_BYTES = 64  # what `sniff` reads of a file
MEDIA_MAX_BYTES = {
    "image": 16 * MB,
    "audio": 16 * MB,
    "video": 64 * MB,
    "document": 100 * MB,
    "sticker": 1 * MB,
    "avatar": 5 * MB,
    "photo": 5 * MB,
}
# What each kind may be, by its first bytes. Documents may be anything.
ALLOWED_TYPES = {
    "image": {"image/jpeg", "image/png", "image/webp", "image/gif"},
    "avatar": {"image/jpeg", "image/png", "image/webp"},
    "photo": {"image/jpeg", "image/png", "image/webp"},
    "sticker": {"image/webp", "image/png"},
    "audio": {"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav", "audio/webm"},
    "video": {"video/mp4", "video/3gpp", "video/quicktime", "video/webm"},
}


class MediaRefused(Exception):
    """`reason`: "empty", "too_large" (`limit` bytes is the most) or "type" (`found`: what the file is, or "")."""

    def __init__(self, reason: str, *, limit: int = 0, found: str = ""):
        super().__init__(reason)
        self.reason, self.limit, self.found = reason, limit, found


def max_bytes(kind: str) -> int:
    overrides = getattr(settings, "API_MEDIA_MAX_BYTES", None) or {}
    return int(overrides.get(kind, MEDIA_MAX_BYTES[kind]))


def sniff(data: bytes, kind: str) -> str:
    """The content type a file's first bytes say it is, or ""."""
    head = data[:HEAD_BYTES]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return "audio/aac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm" if kind == "audio" else "video/webm"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ") or kind == "audio":
            return "audio/mp4"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if head.startswith(b"%PDF"):
        return "application/pdf"
    return ""


def size_of(source) -> int:
    """The size of bytes or of a file object (Django's File and uploads know theirs)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source)
    size = getattr(source, "size", None)
    if size is None:
        position = source.tell()
        size = source.seek(0, 2)
        source.seek(position)
    return int(size)


def head_of(source) -> bytes:
    """The first bytes of bytes or of a file object, which is left at its start."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[:HEAD_BYTES])
    source.seek(0)
    head = source.read(HEAD_BYTES)
    source.seek(0)
    return head


def check(data, kind: str, *, declared: str = "", filename: str = "") -> tuple[str, str]:
    """The content type and file name to send a file of `kind` with, or MediaRefused.

    `data`: the file's bytes or a file object (only its head is read). `declared`: the content type the uploader or the URL's server gave (used only for documents, which may
    be anything); `filename`: its name, made up from the type when there is none.
    """
    size = size_of(data)
    if not size:
        raise MediaRefused("empty")
    limit = max_bytes(kind)
    if size > limit:
        raise MediaRefused("too_large", limit=limit)
    found = sniff(head_of(data), kind)
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if kind in ALLOWED_TYPES:
        if found not in ALLOWED_TYPES[kind]:
            raise MediaRefused("type", found=found or declared)
        mime = found
    else:  # documents: any type; say what it is as best we know
        guessed = mimetypes.guess_type(filename)[0] if filename else None
        mime = (
            found
            or (declared if declared and declared != "application/octet-stream" else "")
            or guessed
            or "application/octet-stream"
        )
    filename = (filename or "").replace("\\", "/").rsplit("/", 1)[-1][:120]
    if not filename:
        filename = f"{kind}{mimetypes.guess_extension(mime) or ''}"
    return mime, filename
