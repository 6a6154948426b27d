"""What WhatsApp shows of a voice note, audio or video before it is played: its length, size and preview.

Read without ffmpeg where the file allows: mutagen for audio (Ogg/Opus, MP3, M4A, WAV...), a small reader of
MP4's boxes for a video's length and picture size. A video's preview frame needs a decoder: ffmpeg, used when it
is on PATH (without it the video goes out with no preview, as before). Nothing here raises: a file it cannot read
goes out without these details.
"""

from __future__ import annotations

import io
import logging
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FFMPEG_SECONDS = 20  # a preview frame takes well under a second; a stuck ffmpeg must not hold a send
THUMBNAIL_WIDTH = 320


@dataclass(slots=True)
class VideoFacts:
    seconds: int = 0
    width: int = 0
    height: int = 0
    thumbnail: bytes = b""  # JPEG


def audio_seconds(data: bytes) -> int:
    """The length of an audio file in whole seconds (0 when unknown)."""
    try:
        import mutagen

        parsed = mutagen.File(io.BytesIO(data))
        length = float(parsed.info.length) if parsed is not None else 0.0
    except Exception:
        length = 0.0
    if not length:
        length = _ffprobe_seconds(data)
    return max(0, round(length))


def video_facts(data: bytes) -> VideoFacts:
    """Length, picture size and a preview frame of a video (MP4, what WhatsApp plays)."""
    facts = VideoFacts()
    try:
        seconds, facts.width, facts.height = mp4_facts(data)
    except Exception:
        seconds = 0.0
    if not seconds:
        seconds = _ffprobe_seconds(data)
    facts.seconds = max(0, round(seconds))
    facts.thumbnail = video_thumbnail(data)
    return facts


# ---------------------------------------------------------------------------------------------- MP4


_CONTAINERS = frozenset({b"moov", b"trak", b"mdia"})


def _boxes(data: bytes, start: int, end: int):
    """(type, body start, box end) of the boxes between start and end (ISO/IEC 14496-12, 4.2)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:  # the box runs to the end of the file
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, box_end in _boxes(data, start, end):
        if found == kind:
            return body, box_end
    return None


def mp4_facts(data: bytes) -> tuple[float, int, int]:
    """(seconds, width, height) from an MP4's movie header and its video track's header; zeros if absent."""
    moov = _child(data, 0, len(data), b"moov")
    if moov is None:
        return 0.0, 0, 0
    seconds = 0.0
    mvhd = _child(data, *moov, b"mvhd")
    if mvhd is not None:
        body = mvhd[0]
        if data[body] == 1:  # version 1: 64-bit times
            timescale, duration = struct.unpack_from(">IQ", data, body + 20)
        else:
            timescale, duration = struct.unpack_from(">II", data, body + 12)
        if timescale:
            seconds = duration / timescale
    for kind, body, end in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _child(data, body, end, b"mdia")
        hdlr = _child(data, *mdia, b"hdlr") if mdia else None
        if hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        tkhd = _child(data, body, end, b"tkhd")
        if tkhd is None:
            continue
        offset = 88 if data[tkhd[0]] == 1 else 76  # past times, ids, layer, volume and the 3x3 matrix
        width, height = struct.unpack_from(">II", data, tkhd[0] + offset)
        return seconds, width >> 16, height >> 16  # 16.16 fixed point
    return seconds, 0, 0


# ---------------------------------------------------------------------------------------------- ffmpeg


def video_thumbnail(data: bytes) -> bytes:
    """A JPEG of the video's first frame, THUMBNAIL_WIDTH wide; b"" without ffmpeg or when it fails."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return b""
    with tempfile.TemporaryDirectory(prefix="waportal-video-") as tmp:
        # A file, not a pipe: an MP4 may keep its index (moov) at the end, which a pipe cannot seek to.
        source, target = Path(tmp) / "in", Path(tmp) / "frame.jpg"
        source.write_bytes(data)
        command = [ffmpeg, "-v", "error", "-y", "-i", str(source), "-frames:v", "1"]
        command += ["-vf", f"scale={THUMBNAIL_WIDTH}:-2", "-f", "image2", str(target)]
        try:
            subprocess.run(command, capture_output=True, timeout=FFMPEG_SECONDS, check=True)
            return target.read_bytes()
        except (OSError, subprocess.SubprocessError) as exc:
            logger.info("no preview frame for a video: %s", exc)
            return b""


def _ffprobe_seconds(data: bytes) -> float:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return 0.0
    with tempfile.NamedTemporaryFile(prefix="waportal-media-") as source:
        source.write(data)
        source.flush()
        command = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", source.name]
        try:
            done = subprocess.run(command, capture_output=True, timeout=FFMPEG_SECONDS, check=True, text=True)
            return float(done.stdout.strip() or 0)
        except (OSError, subprocess.SubprocessError, ValueError):
            return 0.0
