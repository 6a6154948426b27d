"""Pictures and files the simulated network makes up: identicons, sample media, data URLs."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def identicon(key: str, size: int = 96) -> bytes:
    """A symmetric 5x5 pattern in a colour of `key`'s own, as PNG: every account's default picture."""
    h = hashlib.sha256(key.encode()).digest()
    fg = (60 + h[0] % 160, 60 + h[1] % 160, 60 + h[2] % 160)
    bg = (242, 242, 242)
    cells = [[h[3 + y * 3 + min(x, 4 - x)] & 1 for x in range(5)] for y in range(5)]
    step = max(size // 5, 1)
    return _png(size, size, lambda x, y: fg if cells[min(y // step, 4)][min(x // step, 4)] else bg)


def sample_media(kind: str, key: str = "sandbox") -> tuple[bytes, str, str]:
    """Bytes, MIME type and file name of a small file of `kind`, as a simulated peer would send it."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    if kind in ("image", "text"):
        return identicon(key, 64), "image/png", f"IMG-{digest}.png"
    if kind == "audio":
        return (
            b"OggS\x00\x02" + hashlib.sha256(key.encode()).digest() * 8,
            "audio/ogg; codecs=opus",
            f"PTT-{digest}.ogg",
        )
    if kind == "video":
        return (
            b"\x00\x00\x00\x18ftypmp42" + hashlib.sha256(key.encode()).digest() * 16,
            "video/mp4",
            f"VID-{digest}.mp4",
        )
    if kind == "sticker":
        body = b"WEBPVP8 " + hashlib.sha256(key.encode()).digest() * 4
        return b"RIFF" + struct.pack("<I", len(body)) + body, "image/webp", f"STK-{digest}.webp"
    text = f"%PDF-1.4\n% sandbox document {key}\n%%EOF\n".encode()
    return text, "application/pdf", f"DOC-{digest}.pdf"


def _is_image(data: bytes) -> bool:
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
