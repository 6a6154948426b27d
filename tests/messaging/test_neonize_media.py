"""Media sent on the neonize backend shows on the phone as it should: a voice note's length, a video's length,
size and preview, a caption as typed. Over neonize's real builders (its Go upload/send replaced by FakeGo) or
its client class autospecced; the media files are real ones made here."""

import io
import os
import stat
import struct
import wave

import pytest
from neonize.proto import Neonize_pb2 as np
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from PIL import Image

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize import media
from messaging.whatsapp.neonize.backend import NeonizeBackend
from tests.messaging.neonize_harness import ME, MemoryMessageIds, outgoing, sent_message


@pytest.fixture
def client(neonize_client, neo):
    neo.upload.return_value = np.UploadResponse(
        url="https://mmg.whatsapp.net/x", DirectPath="/v/t62/x", MediaKey=b"k" * 32, FileLength=1234
    )
    return neonize_client


@pytest.fixture
def no_ffmpeg(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def ogg_opus(seconds: float) -> bytes:
    """A voice note's container as phones record it (Ogg pages, Opus header), its length in the last granule."""
    from mutagen.ogg import OggPage

    def page(packets, sequence, position, *, first=False, last=False) -> bytes:
        built = OggPage()
        built.packets, built.sequence, built.position, built.serial = packets, sequence, position, 7
        built.first, built.last = first, last
        return built.write()  # with its CRC

    pre_skip = 312
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 8) + b"waportal" + struct.pack("<I", 0)
    end = int(seconds * 48000) + pre_skip
    return page([head], 0, 0, first=True) + page([tags], 1, 0) + page([b"\xf8\xff\xfe"], 2, end, last=True)


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(*, seconds: float, width: int, height: int, version: int = 0) -> bytes:
    """An MP4's boxes as a phone's camera writes them: a sound track first, then the video track."""
    timescale = 600
    if version == 1:
        mvhd = (
            bytes([1, 0, 0, 0]) + struct.pack(">QQIQ", 0, 0, timescale, int(seconds * timescale)) + bytes(80)
        )
    else:
        mvhd = bytes(4) + struct.pack(">IIII", 0, 0, timescale, int(seconds * timescale)) + bytes(80)

    def trak(handler: bytes, w: int, h: int) -> bytes:
        tkhd = bytes(4) + bytes(20) + bytes(8) + bytes(8) + bytes(36) + struct.pack(">II", w << 16, h << 16)
        hdlr = bytes(4) + bytes(4) + handler + bytes(12) + b"\0"
        return box(b"trak", box(b"tkhd", tkhd) + box(b"mdia", box(b"hdlr", hdlr)))

    moov = box(b"moov", box(b"mvhd", mvhd) + trak(b"soun", 0, 0) + trak(b"vide", width, height))
    return box(b"ftyp", b"isom\0\0\2\0isomiso2mp41") + box(b"mdat", bytes(64)) + moov


# ---------------------------------------------------------------------------------------------- 10. audio, video


async def test_a_voice_note_goes_out_with_its_length(client, neo, no_ffmpeg):
    await client.send(message=outgoing(p.MessageKind.AUDIO, media=wav(3.0), mime_type="audio/wav"))
    audio = sent_message(neo)[1].audioMessage
    assert audio.seconds == 3  # not 0:00 on the phone
    assert audio.fileLength == 1234


async def test_an_opus_voice_note_goes_out_with_its_length(client, neo, no_ffmpeg):
    await client.send(message=outgoing(p.MessageKind.AUDIO, media=ogg_opus(12.0)))
    audio = sent_message(neo)[1].audioMessage
    assert (audio.seconds, audio.PTT, audio.mimetype) == (12, True, "audio/ogg; codecs=opus")


async def test_a_video_goes_out_with_its_length_and_picture_size(client, neo, no_ffmpeg):
    await client.send(message=outgoing(p.MessageKind.VIDEO, media=mp4(seconds=7.3, width=640, height=360)))
    video = sent_message(neo)[1].videoMessage
    assert (video.seconds, video.width, video.height) == (7, 640, 360)
    assert not video.HasField("JPEGThumbnail")  # no ffmpeg on PATH: no preview, and no failure


async def test_a_video_gets_a_preview_frame_from_ffmpeg_when_it_is_on_path(
    client, neo, tmp_path, monkeypatch
):
    frame = io.BytesIO()
    Image.new("RGB", (320, 180), "navy").save(frame, "JPEG")
    (tmp_path / "frame.jpg").write_bytes(frame.getvalue())
    ffmpeg = tmp_path / "bin" / "ffmpeg"
    ffmpeg.parent.mkdir()
    # ffmpeg's command line as we call it: the output file is the last argument.
    ffmpeg.write_text(f'#!/bin/sh\nfor last; do :; done\ncp "{tmp_path / "frame.jpg"}" "$last"\n')
    ffmpeg.chmod(ffmpeg.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{ffmpeg.parent}{os.pathsep}{os.environ['PATH']}")
    await client.send(message=outgoing(p.MessageKind.VIDEO, media=mp4(seconds=2, width=1280, height=720)))
    video = sent_message(neo)[1].videoMessage
    assert video.JPEGThumbnail == frame.getvalue()
    assert (video.seconds, video.width, video.height) == (2, 1280, 720)


def test_mp4_headers_of_both_versions_and_files_that_are_not_mp4():
    assert media.mp4_facts(mp4(seconds=90, width=720, height=1280, version=1)) == (90.0, 720, 1280)
    assert media.mp4_facts(b"not a video at all") == (0.0, 0, 0)
    assert media.mp4_facts(mp4(seconds=5, width=10, height=10)[:40]) == (0.0, 0, 0)  # cut short
    assert media.audio_seconds(b"\0" * 100) == 0


# ---------------------------------------------------------------------------------------------- 11. captions


async def _connected_real_client(tmp_path):
    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path / "sessions", database_url="")
    c = backend.create_client(device_id=21, jid=ME, emit=_ignore)
    c.neo = await backend.open_neonize(c)
    await c.on_event(c.neo, np.Connected(status=True))
    return c


async def _ignore(event):
    pass


@pytest.mark.parametrize("kind", [p.MessageKind.IMAGE, p.MessageKind.DOCUMENT])
async def test_a_caption_goes_out_as_typed_without_mentions(fake_go, tmp_path, kind):
    png = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(png, "PNG")
    c = await _connected_real_client(tmp_path)
    caption = "Order @905551112233 ready, ref @0 and @120363000000000001@g.us"
    await c.send(
        message=outgoing(kind, media=png.getvalue(), caption=caption, filename="a.png", mime_type="image/png")
    )
    ((_, sent),) = fake_go.sent
    message = e2e.Message.FromString(sent)
    content = message.imageMessage if kind == p.MessageKind.IMAGE else message.documentMessage
    assert content.caption == caption
    assert list(content.contextInfo.mentionedJID) == [] and list(content.contextInfo.groupMentions) == []
