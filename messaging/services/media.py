"""What a file is: what may be sent or set as a picture (one rule for the API and the dashboard), and what a stored one is.

A size limit per kind (WhatsApp's own; settings.API_MEDIA_MAX_BYTES overrides any of them) and a type read
from the file's first bytes: a declared content type is not trusted. `check` refuses with `MediaRefused`,
whose `reason` each caller words in its own way (the API in English with its codes, the dashboard in the
user's language next to the field). `identify` names the type a stored file is kept and served under (a
received file's sender says what it likes), and `INLINE_TYPES` the few a browser may show on our origin.

A file to check may be bytes or a file object (an upload Django spooled to disk, a fetched URL in a temporary
file): only its first bytes are read, and its size is asked of it, so a 100 MB document is never in memory.
"""

from __future__ import annotations

import mimetypes

from django.conf import settings

MB = 1024 * 1024
HEAD_BYTES = 64  # what `sniff` reads of a file
MARKUP_HEAD_BYTES = 4096  # what is read to tell HTML, SVG or XML (an XML prolog or doctype may come first)
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


# What a browser may show as it is (a picture, a sound, a film): formats that cannot carry a script. Any other
# stored file (HTML, SVG, XML, PDF, ...) is only ever downloaded, never rendered on our origin.
INLINE_TYPES = frozenset(ALLOWED_TYPES["image"] | ALLOWED_TYPES["audio"] | ALLOWED_TYPES["video"])
UNKNOWN_TYPE = "application/octet-stream"
# Containers whose exact type only the file name tells (a .docx is a ZIP file); used only once the bytes
# have shown the container.
ZIP_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".apk": "application/vnd.android.package-archive",
}
OLE_TYPES = {
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
}
# How markup begins (after a byte-order mark and white space), as browsers sniff it: `identify` names such a
# file truthfully, so that nothing downstream mistakes it for something harmless.
HTML_STARTS = (
    b"<!doctype html",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<iframe",
    b"<h1",
    b"<div",
    b"<font",
    b"<table",
    b"<a",
    b"<style",
    b"<title",
    b"<b",
    b"<br",
    b"<p",
    b"<!--",
)


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


def _markup(head: bytes) -> str:
    """The type of a file that begins as HTML, SVG or XML, or ""."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<?xml") or text.startswith(b"<!doctype svg"):
        if b"<svg" in text:
            return "image/svg+xml"
        if b"<html" in text:
            return "application/xhtml+xml"
        return "application/xml"
    if text.startswith(b"<svg"):
        return "image/svg+xml"
    for start in HTML_STARTS:
        if text.startswith(start) and text[len(start) : len(start) + 1] in (
            b" ",
            b">",
            b"/",
            b"\t",
            b"\n",
            b"\r",
        ):
            return "text/html"
    return ""


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut by the end of the head
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r\f" for c in text)


def identify(data: bytes, kind: str = "document", filename: str = "") -> str:
    """The content type a stored file is kept and served under, read from its bytes (its first few KB are
    enough): never a sender's word. The file name only refines a type the bytes have shown (which office
    document a ZIP file is, a CSV among texts); bytes that say nothing are UNKNOWN_TYPE."""
    head = data[:MARKUP_HEAD_BYTES]
    found = sniff(head, kind)
    if found == "application/pdf" or (not found and b"%PDF-" in head[:1024]):
        return "application/pdf"  # browsers find the header anywhere in the first KB
    if found:
        return found
    markup = _markup(head)
    if markup:
        return markup
    ext = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    if head.startswith(b"PK\x03\x04"):
        return ZIP_TYPES.get(ext, "application/zip")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return OLE_TYPES.get(ext, UNKNOWN_TYPE)
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/vnd.rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head and _is_text(head):
        return "text/csv" if ext == ".csv" else "text/plain"
    return UNKNOWN_TYPE


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


def head_of(source, size: int = HEAD_BYTES) -> bytes:
    """The first `size` bytes of bytes or of a file object, which is left at its start."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[:size])
    source.seek(0)
    head = source.read(size)
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
    # Markup too: a document that is HTML or SVG is sent (and stored) as what it is, whatever it was declared.
    head = head_of(data, MARKUP_HEAD_BYTES)
    found = sniff(head, kind) or _markup(head)
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
