"""The neonize backend over neonize's real client class (autospec) and real protobuf events.

Every operation must call the neonize method that does it, with arguments neonize's signature accepts
(create_autospec fails a wrong name or argument), and turn its protobuf answer into our dataclasses. Every
neonize event we subscribe to, built from neonize's own protobuf classes, must become the right domain event.
"""

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from neonize.aioze.client import NewAClient
from neonize.exc import GetProfilePictureError, SendMessageError
from neonize.proto import Neonize_pb2 as np
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.utils.enum import (
    ChatPresence,
    ChatPresenceMedia,
    ClientName,
    ClientType,
    MediaType,
    MediaTypeToMMS,
    ParticipantChange,
    Presence,
    ReceiptType,
    VoteType,
)

from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.app_state import delete_for_me_patch, star_patch
from messaging.whatsapp.neonize.backend import NeonizeBackend
from messaging.whatsapp.neonize.names import translate_error
from tests.messaging.neonize_harness import (
    GROUP,
    ME,
    PEER,
    MemoryMessageIds,
    incoming,
    jid,
    message_event,
    outgoing,
    sent_message,
)
from tests.messaging.neonize_harness import client_on_real_neonize as _client_on_real_neonize
from tests.messaging.neonize_harness import deliver_from_go as _deliver_from_go
from tests.messaging.neonize_harness import until as _until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(neonize_client):
    return neonize_client


# ============================================================================ importing


def test_importing_the_backend_opens_no_connection_and_does_not_load_neonize(tmp_path):
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network touched on import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import django; django.setup()\n"
        "import messaging.whatsapp.neonize.backend as nb\n"
        "from messaging.whatsapp import get_backend\n"
        "backend = get_backend('neonize')\n"
        "assert isinstance(backend, nb.NeonizeBackend), backend\n"
        "assert not any(m == 'neonize' or m.startswith('neonize.') for m in sys.modules), 'neonize loaded eagerly'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="waportal.settings", WAPORTAL_DATA_DIR=str(tmp_path), WA_BACKEND="neonize"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_get_backend_shares_one_instance_per_name(settings):
    from messaging.whatsapp import get_backend

    get_backend.cache_clear()
    try:
        settings.WA_BACKEND = "neonize"
        backend = get_backend()
        assert isinstance(backend, NeonizeBackend)
        assert get_backend("neonize") is backend
        with pytest.raises(ValueError):
            get_backend("carrier-pigeon")
    finally:
        get_backend.cache_clear()


# ============================================================================ sessions and lifecycle


async def test_start_opens_a_sqlite_session_per_device_and_subscribes_events(
    backend, neo, opened, emitted, tmp_path
):
    neo.connect.return_value = asyncio.get_running_loop().create_future()
    c = backend.create_client(device_id=7, jid=None, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    assert opened == [
        {
            "name": str(tmp_path / "sessions" / "device-7.sqlite3"),
            "jid": None,
            "uuid": "device-7-1",
            "new_device": False,
        }
    ]
    assert (tmp_path / "sessions").is_dir()
    subscribed = {call.args[0] for call in neo.event.call_args_list}
    assert {
        np.Connected,
        np.Disconnected,
        np.LoggedOut,
        np.PairStatus,
        np.Message,
        np.Receipt,
        np.GroupInfoEvent,
    } <= subscribed
    neo.qr.assert_called_once_with(c.on_qr)
    await c.on_qr(neo, b"2@code")  # linking: a stop waits for whatsmeow's first code (see NeonizeClient.stop)
    neo.stop.side_effect = lambda: neo.connect.return_value.set_result(None)
    await c.stop()
    neo.stop.assert_awaited()
    assert not c.is_connected()


async def test_the_real_neonize_client_is_made_on_the_device_store_without_connecting(tmp_path, emitted):
    from neonize.events import EVENT_TO_INT

    backend = NeonizeBackend(message_ids=MemoryMessageIds, session_dir=tmp_path / "sessions", database_url="")
    c = backend.create_client(device_id=11, jid=None, emit=emitted)
    real = await backend.open_neonize(c)
    assert isinstance(real, NewAClient)
    assert (real.name, real.uuid, real.new_device) == (
        str(tmp_path / "sessions" / "device-11.sqlite3"),
        b"device-11-1",
        False,
    )
    assert real.device_props.os == "waportal"
    c._subscribe(real)  # neonize's own registry accepts our handlers
    assert {EVENT_TO_INT[np.Connected], EVENT_TO_INT[np.Message], EVENT_TO_INT[np.Receipt]} <= set(
        real.event.list_func
    )
    assert real.event._qr == c.on_qr
    assert real.connect_task is None  # nothing was started


async def test_events_from_neonizes_go_callbacks_reach_emit(tmp_path, emitted, monkeypatch):
    """What the Go library does: call neonize's C callbacks from its own thread with serialized protobufs."""
    import ctypes

    c = await _client_on_real_neonize(tmp_path, monkeypatch, emitted)
    qr = ctypes.create_string_buffer(b"2@from-go,qr")

    def go_thread():
        _deliver_from_go(c.neo, message_event(e2e.Message(conversation="from Go")))
        c.neo._NewAClient__onQr(0, ctypes.addressof(qr))

    await asyncio.to_thread(go_thread)
    message = await emitted.wait_for(p.MessageEvent)
    qr_event = await emitted.wait_for(p.QRCodeEvent)
    assert (message.device_id, message.message.text) == (13, "from Go")
    assert (qr_event.code, qr_event.expires_in) == ("2@from-go,qr", 60.0)
    c._cancel_watchdog()


async def test_postgres_store_resumes_the_stored_session_of_this_number(neo, opened, emitted):
    stored = ["905559999999:3@s.whatsapp.net", "905550000001:12@s.whatsapp.net"]
    seen = []

    def stored_devices(url):
        seen.append(url)
        return stored

    url = "postgres://wa:secret@127.0.0.1/waportal"
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds,
        database_url=url,
        make_neonize=lambda **kw: opened.append(kw) or neo,
        stored_devices=stored_devices,
    )
    linked = backend.create_client(device_id=1, jid=ME, emit=emitted)
    await backend.open_neonize(linked)
    new = backend.create_client(device_id=2, jid=None, emit=emitted)
    await backend.open_neonize(new)
    assert seen == [url]
    assert opened[0]["name"] == url and opened[0]["new_device"] is False
    assert (opened[0]["jid"].User, opened[0]["jid"].Device) == ("905550000001", 12)
    # A device without a session gets a fresh one: never the first stored session of someone else.
    assert opened[1] == {"name": url, "jid": None, "uuid": "device-2-2", "new_device": True}


async def test_connection_that_ends_is_restarted_with_backoff(neo, emitted, tmp_path):
    attempts = []
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    first.set_exception(RuntimeError("failed to connect to websocket"))
    neo.connect.side_effect = [first, second]
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds,
        session_dir=tmp_path,
        database_url="",
        make_neonize=lambda **kw: neo,
        backoff=lambda a: attempts.append(a) or 0,
    )
    c = backend.create_client(device_id=3, jid=ME, emit=emitted)
    await c.start()
    lost = await emitted.wait_for(p.DisconnectedEvent)
    assert lost.reason == "failed to connect to websocket" and lost.will_reconnect is True
    assert lost.device_id == 3
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 2), 5)
    assert attempts == [1]
    neo.stop.side_effect = lambda: second.set_result(None)
    await c.stop()


async def test_stop_while_waiting_to_reconnect_returns_at_once(neo, emitted, tmp_path):
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("no route to host"))
    neo.connect.return_value = failed
    backend = NeonizeBackend(
        message_ids=MemoryMessageIds,
        session_dir=tmp_path,
        database_url="",
        make_neonize=lambda **kw: neo,
        backoff=lambda a: 3600,
    )
    c = backend.create_client(device_id=3, jid=ME, emit=emitted)
    await c.start()
    await emitted.wait_for(p.DisconnectedEvent)
    await asyncio.wait_for(c.stop(), 5)
    assert neo.connect.await_count == 1


async def test_each_connection_gets_a_thread_of_its_own(backend, neo, emitted):
    # neonize keeps one default-executor thread blocked per connected device (its Go Neonize() call).
    loop = asyncio.get_running_loop()
    neo.connect.return_value = loop.create_future()
    c = backend.create_client(device_id=8, jid=ME, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    assert loop._default_executor._max_workers >= 32 + 2 * len(backend.clients)
    neo.stop.side_effect = lambda: neo.connect.return_value.set_result(None)
    await c.stop()


async def test_reconnect_restarts_the_connection(backend, neo, emitted):
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    neo.connect.side_effect = [first, second]
    neo.stop.side_effect = lambda: first.done() or first.set_result(None)
    c = backend.create_client(device_id=14, jid=ME, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    await c.reconnect()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 2), 5)
    assert emitted.of(p.DisconnectedEvent) == []  # a requested reconnect is not a lost connection
    neo.stop.side_effect = lambda: second.set_result(None)
    await c.stop()


def test_every_gateway_operation_is_implemented():
    from messaging.whatsapp.neonize.client import NeonizeClient

    assert not NeonizeClient.__abstractmethods__
    for name in p.OPERATIONS:
        assert asyncio.iscoroutinefunction(getattr(NeonizeClient, name)), name


async def test_qr_codes_rotate_with_their_expiry(client, neo, emitted):
    await client.on_qr(neo, b"2@first,code")
    await client.on_qr(neo, b"2@second,code")
    first, second = emitted.of(p.QRCodeEvent)
    assert (first.code, first.expires_in) == ("2@first,code", 60.0)
    assert (second.code, second.expires_in) == ("2@second,code", 20.0)
    client._cancel_watchdog()


async def test_linking_ends_when_the_last_qr_expires_unscanned(backend, neo, emitted, monkeypatch):
    import messaging.whatsapp.neonize.connection as nb

    monkeypatch.setattr(nb, "FIRST_QR_SECONDS", 0.01)
    monkeypatch.setattr(nb, "QR_GRACE_SECONDS", 0.0)
    neo.connect.return_value = asyncio.get_running_loop().create_future()
    neo.stop.side_effect = lambda: (
        neo.connect.return_value.done() or neo.connect.return_value.set_result(None)
    )
    c = backend.create_client(device_id=9, jid=None, emit=emitted)
    await c.start()
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    await c.on_qr(neo, b"2@only,code")
    expired = await emitted.wait_for(p.DisconnectedEvent)
    assert expired.will_reconnect is False and "expired" in expired.reason
    neo.stop.assert_awaited()


async def test_pair_phone_waits_for_the_linking_session_then_returns_the_code(backend, neo, emitted):
    neo.connect.return_value = asyncio.get_running_loop().create_future()
    neo.PairPhone.return_value = "ABCD-EFGH"
    c = backend.create_client(device_id=4, jid=None, emit=emitted)
    pairing = asyncio.create_task(c.pair_phone(phone="+90 555 111 22 33"))
    await asyncio.wait_for(_until(lambda: neo.connect.await_count == 1), 5)
    assert not pairing.done()
    await c.on_qr(neo, b"2@code")
    code = await asyncio.wait_for(pairing, 5)
    assert code == p.PairCode(code="ABCD-EFGH", expires_in=160.0)
    neo.PairPhone.assert_awaited_once_with("905551112233", True, ClientName.LINUX, ClientType.CHROME)
    assert emitted.of(p.PairCodeEvent)[0].code == "ABCD-EFGH"
    neo.stop.side_effect = lambda: neo.connect.return_value.set_result(None)
    await c.stop()


async def test_pair_phone_refuses_a_bad_number(client):
    with pytest.raises(p.InvalidRequest):
        await client.pair_phone(phone="abc")


async def test_logout_unlinks_deletes_the_session_and_reports_it(client, neo, backend, emitted):
    session = backend.session_path(7)
    session.parent.mkdir(parents=True, exist_ok=True)
    session.write_bytes(b"sqlite")
    await client.logout()
    neo.logout.assert_awaited_once_with()
    neo.stop.assert_awaited()
    assert not session.exists()
    assert emitted.of(p.LoggedOutEvent)[0].reason == "logged out"
    assert not client.is_connected()


async def test_operations_need_a_connection(backend, neo, emitted):
    c = backend.create_client(device_id=5, jid=ME, emit=emitted)
    with pytest.raises(p.NotConnected):
        await c.send(message=outgoing(p.MessageKind.TEXT, text="hi"))
    neo.send_message.assert_not_awaited()


# ============================================================================ sending


async def test_send_text(client, neo):
    result = await client.send(message=outgoing(p.MessageKind.TEXT, text="Merhaba"))
    to, message = sent_message(neo)
    assert to == jid(PEER)
    assert message == e2e.Message(conversation="Merhaba")
    # neonize cannot send with our ID; the client keeps naming the message by ours.
    assert result == p.SendResult(id="3EB0OURS", timestamp=1_700_000_000.0)


async def test_send_text_reply_forwarded(client, neo):
    quote = p.QuotedMessage(id="QUOTED1", sender=PEER, text="Is it in stock?")
    await client.send(message=outgoing(p.MessageKind.TEXT, text="Yes", reply_to=quote, is_forwarded=True))
    _, message = sent_message(neo)
    ext = message.extendedTextMessage
    assert ext.text == "Yes"
    assert (ext.contextInfo.stanzaID, ext.contextInfo.participant) == ("QUOTED1", PEER)
    assert ext.contextInfo.quotedMessage.conversation == "Is it in stock?"
    assert ext.contextInfo.isForwarded and ext.contextInfo.forwardingScore == 1


async def test_send_text_with_mentions_everyone_and_a_timer(client, neo):
    neo.get_group_info.return_value = group_info_pb()
    everyone = [p_.jid for p_ in EXPECTED_GROUP.participants]
    await client.send(
        message=outgoing(
            p.MessageKind.TEXT, to=GROUP, text="Hepiniz", mentions=[p.EVERYONE], expiration=86400
        )
    )
    _, message = sent_message(neo)
    context = message.extendedTextMessage.contextInfo
    assert list(context.mentionedJID) == everyone and context.expiration == 86400


async def test_sending_the_same_id_twice_delivers_once(client, neo):
    message = outgoing(p.MessageKind.TEXT, text="once")
    first = await client.send(message=message)
    second = await client.send(message=message)
    assert first == second
    assert neo.send_message.await_count == 1


async def test_sending_the_same_id_after_a_restart_delivers_once(client, neo, backend, emitted):
    await client.send(message=outgoing(p.MessageKind.TEXT, text="once"))
    shared = client.ids  # the map is in the shared database: the restarted process sees it
    restarted = NeonizeBackend(
        message_ids=lambda device_id: shared,
        session_dir=backend.session_dir,
        database_url="",
        make_neonize=lambda **kw: neo,
    )
    again = restarted.create_client(device_id=7, jid=ME, emit=emitted)
    again.neo = neo
    await again.on_event(neo, np.Connected(status=True))
    assert (await again.send(message=outgoing(p.MessageKind.TEXT, text="once"))).id == "3EB0OURS"
    assert neo.send_message.await_count == 1


async def test_whatsapps_ids_of_our_messages_come_back_as_ours(client, neo):
    await client.send(message=outgoing(p.MessageKind.TEXT, text="order ready", id="3EB0OURS"))
    source = np.MessageSource(Chat=jid(PEER), Sender=jid(PEER))
    (receipt,) = await incoming(
        client, np.Receipt(MessageSource=source, MessageIDs=["3EB0SERVERID"], Type=np.Receipt.READ)
    )
    assert receipt.message_ids == ["3EB0OURS"]
    reaction = e2e.ReactionMessage(key=MessageKey(ID="3EB0SERVERID", fromMe=True), text="🙏")
    (reacted,) = await incoming(client, message_event(e2e.Message(reactionMessage=reaction)))
    assert reacted.message.target_id == "3EB0OURS"
    context = e2e.ContextInfo(
        stanzaID="3EB0SERVERID", participant=ME, quotedMessage=e2e.Message(conversation="order ready")
    )
    reply = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="thanks", contextInfo=context))
    (replied,) = await incoming(client, message_event(reply, msg_id="PEERMSG"))
    assert (replied.message.id, replied.message.reply_to_id) == ("PEERMSG", "3EB0OURS")


async def test_acting_on_our_message_uses_whatsapps_id(client, neo):
    await client.send(message=outgoing(p.MessageKind.TEXT, text="typo", id="3EB0OURS"))
    neo.send_message.reset_mock()
    await client.edit(chat=PEER, message_id="3EB0OURS", text="fixed")
    assert sent_message(neo)[1].editedMessage.message.protocolMessage.key.ID == "3EB0SERVERID"
    await client.revoke(chat=PEER, message_id="3EB0OURS", sender=ME)
    neo.build_revoke.assert_awaited_once_with(jid(PEER), jid(ME), "3EB0SERVERID")
    await client.react(chat=PEER, message_id="3EB0OURS", sender=ME, emoji="✅")
    neo.build_reaction.assert_awaited_once_with(jid(PEER), jid(ME), "3EB0SERVERID", "✅")
    neo.send_message.reset_mock()
    quote = p.QuotedMessage(id="3EB0OURS", sender=ME, text="typo", from_me=True)
    await client.send(message=outgoing(p.MessageKind.TEXT, text="see above", reply_to=quote, id="3EB0NEXT"))
    assert sent_message(neo)[1].extendedTextMessage.contextInfo.stanzaID == "3EB0SERVERID"


async def test_send_error_is_translated(client, neo):
    neo.send_message.side_effect = SendMessageError("server returned error 403: not-authorized")
    with pytest.raises(p.Forbidden):
        await client.send(message=outgoing(p.MessageKind.TEXT, text="x"))


async def test_several_go_out_one_by_one_a_refusal_skipped_a_lost_connection_stopping(client, neo):
    neo.send_message.side_effect = [
        neo.send_message.return_value,
        SendMessageError("server returned error 403: not-authorized"),
        neo.send_message.return_value,
        SendMessageError("websocket not connected"),
    ]
    messages = [outgoing(p.MessageKind.TEXT, id=f"3EB0N{i}", text=f"n{i}") for i in range(5)]
    results = await client.send_many(messages=messages)
    assert [type(r) for r in results] == [p.SendResult, p.Forbidden, p.SendResult, p.NotConnected]
    assert neo.send_message.call_count == 4  # the fifth was not tried


@pytest.mark.parametrize(
    ("whatsmeow_says", "code"),
    [
        ("info query returned status 404: item-not-found", p.ErrorCode.NOT_FOUND),
        ("info query returned status 403: forbidden", p.ErrorCode.FORBIDDEN),
        ("websocket not connected", p.ErrorCode.NOT_CONNECTED),
        ("the store doesn't contain a device JID", p.ErrorCode.NOT_LOGGED_IN),
        ("info query timed out", p.ErrorCode.TIMEOUT),
        ("that group invite link has been revoked", p.ErrorCode.INVALID),
        ("you're not participating in that group", p.ErrorCode.FORBIDDEN),
        ("download failed with status code 410", p.ErrorCode.NOT_FOUND),
        ("failed to send message: server returned error 463", p.ErrorCode.REACHOUT_TIMELOCK),
        ("something nobody expected", p.ErrorCode.UPSTREAM),
    ],
)
def test_whatsmeow_errors_become_our_error_codes(whatsmeow_says, code):
    error = translate_error(SendMessageError(whatsmeow_says))
    assert (error.code, error.message) == (code, whatsmeow_says)


async def test_send_image_view_once_reply(client, neo):
    built = e2e.Message(imageMessage=e2e.ImageMessage(URL="https://mmg"))
    neo.build_image_message.return_value = built
    quote = p.QuotedMessage(id="Q2", sender=PEER, text="photo?")
    message = outgoing(
        p.MessageKind.IMAGE,
        media=b"\x89PNG",
        caption="look",
        view_once=True,
        reply_to=quote,
        is_forwarded=True,
    )
    await client.send(message=message)
    call = neo.build_image_message.await_args
    assert call.args == (b"\x89PNG",)
    assert "caption" not in call.kwargs and call.kwargs["viewonce"] is True  # set as typed, after building
    quoted = call.kwargs["quoted"]
    assert quoted.Info.ID == "Q2" and quoted.Info.MessageSource.Sender == jid(PEER)
    assert quoted.Message.conversation == "photo?"
    _, sent = sent_message(neo)
    assert sent.imageMessage.URL == "https://mmg" and sent.imageMessage.caption == "look"
    assert sent.imageMessage.contextInfo.isForwarded


async def test_send_document(client, neo):
    neo.build_document_message.return_value = e2e.Message(
        documentMessage=e2e.DocumentMessage(fileName="fatura.pdf")
    )
    await client.send(
        message=outgoing(
            p.MessageKind.DOCUMENT,
            media=b"%PDF",
            filename="fatura.pdf",
            mime_type="application/pdf",
            caption="Invoice",
        )
    )
    call = neo.build_document_message.await_args
    assert call.args == (b"%PDF",)
    assert call.kwargs == {
        "title": "fatura.pdf",
        "filename": "fatura.pdf",
        "mimetype": "application/pdf",
        "quoted": None,
    }
    document = sent_message(neo)[1].documentMessage
    assert (document.fileName, document.caption) == ("fatura.pdf", "Invoice")


async def test_send_sticker_webp_goes_as_is(client, neo):
    neo.build_sticker_message.return_value = e2e.Message(
        stickerMessage=e2e.StickerMessage(mimetype="image/webp")
    )
    await client.send(message=outgoing(p.MessageKind.STICKER, media=b"RIFF", mime_type="image/webp"))
    neo.build_sticker_message.assert_awaited_once_with(b"RIFF", quoted=None, passthrough=True)
    assert sent_message(neo)[1].stickerMessage.mimetype == "image/webp"


def upload_response() -> np.UploadResponse:
    return np.UploadResponse(
        url="https://mmg.whatsapp.net/x",
        DirectPath="/v/t62/x",
        MediaKey=b"k" * 32,
        FileEncSHA256=b"e" * 32,
        FileSHA256=b"s" * 32,
        FileLength=1234,
    )


async def test_send_audio_uploads_without_ffmpeg(client, neo):
    neo.upload.return_value = upload_response()
    await client.send(
        message=outgoing(p.MessageKind.AUDIO, media=b"OggS", mime_type="audio/ogg; codecs=opus")
    )
    neo.upload.assert_awaited_once_with(b"OggS", MediaType.MediaAudio)
    audio = sent_message(neo)[1].audioMessage
    assert (audio.directPath, audio.fileLength, audio.mediaKey) == ("/v/t62/x", 1234, b"k" * 32)
    assert audio.PTT and audio.mimetype == "audio/ogg; codecs=opus"


async def test_send_video_view_once_with_caption(client, neo):
    neo.upload.return_value = upload_response()
    await client.send(message=outgoing(p.MessageKind.VIDEO, media=b"mp4", caption="clip", view_once=True))
    neo.upload.assert_awaited_once_with(b"mp4", MediaType.MediaVideo)
    video = sent_message(neo)[1].videoMessage
    assert video.viewOnce and video.caption == "clip" and video.mimetype == "video/mp4"
    assert video.URL == "https://mmg.whatsapp.net/x"


async def test_send_media_without_bytes_is_refused(client, neo):
    with pytest.raises(p.InvalidRequest):
        await client.send(message=outgoing(p.MessageKind.IMAGE))
    neo.send_message.assert_not_awaited()


async def test_send_contact(client, neo):
    await client.send(
        message=outgoing(p.MessageKind.CONTACT, contact_name="Mehmet", contact_phone="905551234567")
    )
    contact = sent_message(neo)[1].contactMessage
    assert contact.displayName == "Mehmet"
    assert "BEGIN:VCARD" in contact.vcard and "905551234567" in contact.vcard


async def test_send_location(client, neo):
    await client.send(
        message=outgoing(p.MessageKind.LOCATION, latitude=41.0082, longitude=28.9784, text="Sultanahmet")
    )
    location = sent_message(neo)[1].locationMessage
    assert (location.degreesLatitude, location.degreesLongitude, location.name) == (
        41.0082,
        28.9784,
        "Sultanahmet",
    )


async def test_send_link(client, neo):
    await client.send(message=outgoing(p.MessageKind.LINK, text="https://example.com/x", caption="See this"))
    ext = sent_message(neo)[1].extendedTextMessage
    assert ext.text == "See this\nhttps://example.com/x" and ext.matchedText == "https://example.com/x"


async def test_send_poll(client, neo):
    neo.build_poll_vote_creation.return_value = e2e.Message(
        pollCreationMessage=e2e.PollCreationMessage(name="Lunch?")
    )
    await client.send(
        message=outgoing(
            p.MessageKind.POLL,
            poll_question="Lunch?",
            poll_options=["Kebab", "Pide", "Salad"],
            poll_max_answer=2,
        )
    )
    neo.build_poll_vote_creation.assert_awaited_once_with(
        "Lunch?", ["Kebab", "Pide", "Salad"], VoteType.MULTIPLE, quoted=None
    )
    assert sent_message(neo)[1].pollCreationMessage.selectableOptionsCount == 2


async def test_send_presence(client, neo):
    await client.send_presence(presence=p.Presence.AVAILABLE)
    neo.send_presence.assert_awaited_once_with(Presence.AVAILABLE)


async def test_send_chat_presence(client, neo):
    await client.send_chat_presence(chat=PEER, state=p.ChatPresenceState.COMPOSING, media="audio")
    neo.send_chat_presence.assert_awaited_once_with(
        jid(PEER), ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
    )


# ============================================================================ acting on messages


async def test_revoke(client, neo):
    revoke = e2e.Message(
        protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE, key=MessageKey(ID="M1"))
    )
    neo.build_revoke.return_value = revoke
    result = await client.revoke(chat=GROUP, message_id="M1", sender=ME)
    neo.build_revoke.assert_awaited_once_with(jid(GROUP), jid(ME), "M1")
    neo.send_message.assert_awaited_once_with(jid(GROUP), revoke)
    assert result.id == "M1"


async def test_edit(client, neo):
    await client.edit(chat=PEER, message_id="M2", text="fixed typo")
    to, message = sent_message(neo)
    proto = message.editedMessage.message.protocolMessage
    assert to == jid(PEER)
    assert proto.type == e2e.ProtocolMessage.MESSAGE_EDIT
    assert proto.key.ID == "M2" and proto.key.fromMe
    assert proto.editedMessage.conversation == "fixed typo"


async def test_react(client, neo):
    reaction = e2e.Message(reactionMessage=e2e.ReactionMessage(text="👍"))
    neo.build_reaction.return_value = reaction
    await client.react(chat=PEER, message_id="M3", sender=PEER, emoji="👍")
    neo.build_reaction.assert_awaited_once_with(jid(PEER), jid(PEER), "M3", "👍")
    neo.send_message.assert_awaited_once_with(jid(PEER), reaction)


async def test_mark_read(client, neo):
    await client.mark_read(chat=GROUP, message_ids=["A", "B"], sender=PEER)
    neo.mark_read.assert_awaited_once_with(
        "A", "B", chat=jid(GROUP), sender=jid(PEER), receipt=ReceiptType.READ
    )


async def test_star_is_not_supported(client, neo):
    with pytest.raises(p.NotSupported):
        await client.star(chat=PEER, message_id="M4", sender=PEER, from_me=False, starred=True)
    neo.send_app_state.assert_not_awaited()


async def test_delete_for_me_is_not_supported(client, neo):
    with pytest.raises(p.NotSupported):
        await client.delete_for_me(chat=PEER, message_id="M4", sender=PEER, from_me=True)
    neo.send_app_state.assert_not_awaited()


def test_app_state_patches_have_whatsmeows_shape():
    star = star_patch(chat=GROUP, message_id="M5", sender=PEER, from_me=False, starred=True)
    assert star.Type == np.PatchInfo.REGULAR_HIGH and star.Timestamp > 0
    (mutation,) = star.Mutations
    assert list(mutation.Index) == ["star", GROUP, "M5", "0", PEER]
    assert mutation.Version == 2 and mutation.Value.starAction.starred
    delete = delete_for_me_patch(chat=PEER, message_id="M6", sender=ME, from_me=True)
    (mutation,) = delete.Mutations
    assert list(mutation.Index) == ["deleteMessageForMe", PEER, "M6", "1", "0"]
    assert mutation.Version == 3 and mutation.Value.deleteMessageForMeAction.deleteMedia


async def test_download_media_uses_the_ref_of_a_received_message(client, neo):
    image = e2e.ImageMessage(
        mimetype="image/jpeg",
        directPath="/v/t62/abc",
        mediaKey=b"K" * 32,
        fileSHA256=b"S" * 32,
        fileEncSHA256=b"E" * 32,
        fileLength=2048,
    )
    (event,) = await incoming(client, message_event(e2e.Message(imageMessage=image)))
    neo.download_media_with_path.return_value = b"\xff\xd8jpeg"
    data = await client.download_media(ref=event.message.media.ref)
    assert data == b"\xff\xd8jpeg"
    neo.download_media_with_path.assert_awaited_once_with(
        "/v/t62/abc", b"E" * 32, b"S" * 32, b"K" * 32, 2048, MediaType.MediaImage, MediaTypeToMMS.MediaImage
    )


async def test_download_media_without_a_ref_is_not_found(client):
    with pytest.raises(p.NotFound):
        await client.download_media(ref={})


# ============================================================================ users and profile


async def test_user_info(client, neo):
    details = np.VerifiedName(Details={"verifiedName": "Acme Ltd"})
    neo.get_user_info.return_value = [
        np.GetUserInfoSingleReturnFunction(
            JID=jid(PEER),
            UserInfo=np.UserInfo(
                Status="Busy", PictureID="pic1", Devices=[jid(PEER, device=2)], VerifiedName=details
            ),
        )
    ]
    (info,) = await client.user_info(jids=[PEER])
    neo.get_user_info.assert_awaited_once_with(jid(PEER))
    assert info == p.UserInfo(
        jid=PEER,
        status="Busy",
        picture_id="pic1",
        devices=["905551112233:2@s.whatsapp.net"],
        verified_name="Acme Ltd",
    )


async def test_avatar(client, neo):
    neo.get_profile_picture.return_value = np.ProfilePictureInfo(
        URL="https://pps.whatsapp.net/a", ID="99", Type="preview", DirectPath="/a"
    )
    avatar = await client.avatar(jid=PEER, preview=True)
    (target, params), _ = neo.get_profile_picture.await_args
    assert target == jid(PEER) and params.Preview and not params.IsCommunity
    assert avatar == p.Avatar(url="https://pps.whatsapp.net/a", id="99", type="preview", direct_path="/a")


async def test_avatar_not_set_is_none(client, neo):
    neo.get_profile_picture.side_effect = GetProfilePictureError("that user does not have a profile picture")
    assert await client.avatar(jid=PEER) is None


async def test_avatar_hidden_from_us_is_none(client, neo):
    neo.get_profile_picture.side_effect = GetProfilePictureError(
        "info query returned status 401: not-authorized"
    )
    assert await client.avatar(jid=PEER) is None


async def test_set_avatar(client, neo):
    neo.set_profile_photo.return_value = "1700000001"
    assert await client.set_avatar(image=b"jpeg") == "1700000001"
    neo.set_profile_photo.assert_awaited_once_with(b"jpeg")


async def test_set_push_name(client, neo):
    await client.set_push_name(name="Our Shop")
    neo.set_profile_name.assert_awaited_once_with("Our Shop")


async def test_privacy(client, neo):
    S = np.PrivacySettings
    neo.get_privacy_settings.return_value = S(
        GroupAdd=S.CONTACTS, LastSeen=S.NONE, Status=S.ALL, ReadReceipts=S.ALL, Online=S.MATCH_LAST_SEEN
    )
    privacy = await client.privacy()
    assert privacy == p.PrivacySettings(
        group_add="contacts", last_seen="none", status="all", read_receipts="all", online="match_last_seen"
    )


async def test_contacts(client, neo):
    info = np.ContactInfo(
        Found=True, FirstName="Ayşe", FullName="Ayşe Yılmaz", PushName="ayse", BusinessName=""
    )
    neo.contact.get_all_contacts.return_value = [np.Contact(JID=jid(PEER), Info=info)]
    assert await client.contacts() == [
        p.ContactInfo(jid=PEER, first_name="Ayşe", full_name="Ayşe Yılmaz", push_name="ayse")
    ]


async def test_check_numbers(client, neo):
    neo.is_on_whatsapp.return_value = [
        np.IsOnWhatsAppResponse(Query="+905551112233", JID=jid(PEER), IsIn=True),
        np.IsOnWhatsAppResponse(Query="+905550000009", JID=jid("905550000009@s.whatsapp.net"), IsIn=False),
    ]
    result = await client.check_numbers(phones=["+90 555 111 22 33", "905550000009"])
    neo.is_on_whatsapp.assert_awaited_once_with("+905551112233", "+905550000009")
    assert [(r.query, r.jid, r.is_in) for r in result] == [
        ("+90 555 111 22 33", PEER, True),
        ("905550000009", "905550000009@s.whatsapp.net", False),
    ]


async def test_business_profile_is_not_supported(client):
    with pytest.raises(p.NotSupported):
        await client.business_profile(jid=PEER)


# ============================================================================ groups


def group_info_pb(**extra) -> np.GroupInfo:
    return np.GroupInfo(
        JID=jid(GROUP),
        OwnerJID=jid(ME),
        GroupName=np.GroupName(Name="Team"),
        GroupTopic=np.GroupTopic(Topic="Daily"),
        GroupLocked=np.GroupLocked(isLocked=True),
        GroupAnnounce=np.GroupAnnounce(IsAnnounce=False),
        GroupCreated=1_690_000_000,
        Participants=[
            np.GroupParticipant(JID=jid(ME), IsAdmin=True, IsSuperAdmin=True),
            np.GroupParticipant(JID=jid("123456789@lid"), PhoneNumber=jid(PEER), DisplayName="Ayşe"),
        ],
        **extra,
    )


EXPECTED_GROUP = p.GroupInfo(
    jid=GROUP,
    name="Team",
    topic="Daily",
    owner=ME,
    created_at=1_690_000_000.0,
    locked=True,
    announce=False,
    participants=[
        p.GroupParticipant(jid=ME, is_admin=True, is_super_admin=True),
        p.GroupParticipant(jid=PEER, display_name="Ayşe"),
    ],
)


async def test_joined_groups(client, neo):
    neo.get_joined_groups.return_value = [group_info_pb()]
    assert await client.joined_groups() == [EXPECTED_GROUP]


async def test_group_info(client, neo):
    neo.get_group_info.return_value = group_info_pb()
    assert await client.group_info(jid=GROUP) == EXPECTED_GROUP
    neo.get_group_info.assert_awaited_once_with(jid(GROUP))


async def test_group_info_from_link_takes_the_code_of_a_link(client, neo):
    neo.get_group_info_from_link.return_value = group_info_pb()
    assert await client.group_info_from_link(code="https://chat.whatsapp.com/AbCd") == EXPECTED_GROUP
    neo.get_group_info_from_link.assert_awaited_once_with("AbCd")


async def test_newsletter_messages_oldest_first_with_their_counts(client, neo):
    neo.get_newsletter_messages.return_value = [
        np.NewsletterMessage(
            MessageServerID=12,
            ViewsCount=40,
            ReactionCounts=[np.Reaction(type="👍", count=3)],
            Message=e2e.Message(conversation="second"),
        ),
        np.NewsletterMessage(MessageServerID=11, Message=e2e.Message(conversation="first")),
    ]
    newsletter = "120363000000000002@newsletter"
    posts = await client.newsletter_messages(jid=newsletter, count=2, before=13)
    assert [(x.server_id, x.text, x.views, x.reactions) for x in posts] == [
        (11, "first", 0, {}),
        (12, "second", 40, {"👍": 3}),
    ]
    neo.get_newsletter_messages.assert_awaited_once_with(jid(newsletter), 2, 13)


@pytest.mark.parametrize(
    ("op", "kwargs"),
    [
        ("pin_chat", {"pinned": True}),
        ("archive_chat", {"archived": True}),
        ("label_chat", {"label_id": "1", "label_name": "", "labeled": True}),
    ],
)
async def test_app_state_chat_changes_are_not_supported_yet(client, op, kwargs):
    with pytest.raises(p.NotSupported, match="app-state"):
        await getattr(client, op)(chat=PEER, **kwargs)


async def test_disappearing_timer_and_reject_call_go_to_whatsmeow(client, neo):
    from datetime import timedelta

    await client.set_disappearing_timer(chat=PEER, seconds=86400)
    neo.set_disappearing_timer.assert_awaited_once_with(jid(PEER), timedelta(seconds=86400))
    await client.reject_call(caller=PEER, call_id="CALL1")
    neo.reject_call.assert_awaited_once_with(jid(PEER), "CALL1")


async def test_create_group(client, neo):
    neo.create_group.return_value = group_info_pb()
    assert await client.create_group(name="Team", participants=[PEER]) == EXPECTED_GROUP
    neo.create_group.assert_awaited_once_with("Team", [jid(PEER)])


async def test_update_participants_reports_each_number(client, neo):
    other = "905557777777@s.whatsapp.net"
    neo.update_group_participants.return_value = [
        np.GroupParticipant(JID=jid(PEER)),
        np.GroupParticipant(JID=jid(other), Error=403),
    ]
    results = await client.update_participants(
        jid=GROUP, participants=[PEER, other], action=p.ParticipantAction.PROMOTE
    )
    neo.update_group_participants.assert_awaited_once_with(
        jid(GROUP), [jid(PEER), jid(other)], ParticipantChange.PROMOTE
    )
    assert [(r.participant, r.status) for r in results] == [(PEER, "success"), (other, "error")]
    assert "403" in results[1].message and "not allowed" in results[1].message


async def test_join_with_link(client, neo):
    neo.join_group_with_link.return_value = jid(GROUP)
    assert await client.join_with_link(code="https://chat.whatsapp.com/AbCdEf123") == GROUP
    neo.join_group_with_link.assert_awaited_once_with("AbCdEf123")


async def test_invite_link_reset(client, neo):
    neo.get_group_invite_link.return_value = "https://chat.whatsapp.com/NewCode"
    assert await client.invite_link(jid=GROUP, reset=True) == "https://chat.whatsapp.com/NewCode"
    neo.get_group_invite_link.assert_awaited_once_with(jid(GROUP), revoke=True)


async def test_join_requests(client, neo):
    neo.get_group_request_participants.return_value = [
        np.GroupParticipantRequest(Participant=jid(PEER), TimeAt=1_700_000_000_000_000)
    ]
    assert await client.join_requests(jid=GROUP) == [p.JoinRequest(jid=PEER, requested_at=1_700_000_000.0)]
    neo.get_group_request_participants.assert_awaited_once_with(jid(GROUP))


async def test_answer_join_requests_is_not_supported(client):
    with pytest.raises(p.NotSupported):
        await client.answer_join_requests(jid=GROUP, participants=[PEER], approve=True)


async def test_leave_group(client, neo):
    await client.leave_group(jid=GROUP)
    neo.leave_group.assert_awaited_once_with(jid(GROUP))


async def test_set_group_name(client, neo):
    await client.set_group_name(jid=GROUP, name="New name")
    neo.set_group_name.assert_awaited_once_with(jid(GROUP), "New name")


async def test_set_group_topic(client, neo):
    await client.set_group_topic(jid=GROUP, topic="Be nice")
    neo.set_group_topic.assert_awaited_once_with(jid(GROUP), "", "", "Be nice")


async def test_set_group_photo(client, neo):
    neo.set_group_photo.return_value = "pic-7"
    assert await client.set_group_photo(jid=GROUP, image=b"jpeg") == "pic-7"
    neo.set_group_photo.assert_awaited_once_with(jid(GROUP), b"jpeg")


async def test_set_group_locked(client, neo):
    await client.set_group_locked(jid=GROUP, locked=True)
    neo.set_group_locked.assert_awaited_once_with(jid(GROUP), True)


async def test_set_group_announce(client, neo):
    await client.set_group_announce(jid=GROUP, announce=False)
    neo.set_group_announce.assert_awaited_once_with(jid(GROUP), False)


# ============================================================================ newsletters


async def test_newsletters(client, neo):
    thread = np.NewsletterThreadMetadata(
        Name=np.NewsletterText(Text="News"), Description=np.NewsletterText(Text="Daily"), SubscriberCount=42
    )
    meta = np.NewsletterMetadata(
        ID=jid("120363999@newsletter"),
        ThreadMeta=thread,
        ViewerMeta=np.NewsletterViewerMetadata(Role=np.SUBSCRIBER),
    )
    neo.get_subscribed_newletters.return_value = [meta]
    assert await client.newsletters() == [
        p.Newsletter(
            jid="120363999@newsletter", name="News", description="Daily", subscribers=42, role="subscriber"
        )
    ]


async def test_unfollow_newsletter(client, neo):
    await client.unfollow_newsletter(jid="120363999@newsletter")
    neo.unfollow_newsletter.assert_awaited_once_with(jid("120363999@newsletter"))


# ============================================================================ connection events


async def test_connected_event_names_our_number(backend, neo, emitted):
    c = backend.create_client(device_id=7, jid=None, emit=emitted)
    c.neo = neo
    await c.on_event(neo, np.Connected(status=True))
    (event,) = emitted.events
    assert event == p.ConnectedEvent(device_id=7, jid=ME, push_name="Our Shop")
    assert c.is_connected()


async def test_disconnected_event(client, neo, emitted):
    await client.on_event(neo, np.Disconnected(status=True))
    assert emitted.events == [p.DisconnectedEvent(device_id=7, reason="connection lost", will_reconnect=True)]
    assert not client.is_connected()


async def test_logged_out_event_forgets_the_session(client, neo, backend, emitted):
    session = backend.session_path(7)
    session.parent.mkdir(parents=True, exist_ok=True)
    session.write_bytes(b"sqlite")
    await client.on_event(neo, np.LoggedOut(OnConnect=False, Reason=np.LOGGED_OUT))
    assert emitted.events == [p.LoggedOutEvent(device_id=7, reason="logged_out")]
    await asyncio.wait_for(_until(lambda: not session.exists()), 5)
    neo.stop.assert_awaited()


async def test_pair_success_event(client, neo, emitted):
    await client.on_event(
        neo,
        np.PairStatus(
            ID=jid(ME, device=12), BusinessName="Acme", Platform="android", Status=np.PairStatus.SUCCESS
        ),
    )
    assert emitted.events == [p.PairedEvent(device_id=7, jid=ME, push_name="Acme", platform="android")]


async def test_pair_error_event(client, neo, emitted):
    await client.on_event(neo, np.PairStatus(Status=np.PairStatus.ERROR, Error="bad signature"))
    (event,) = emitted.events
    assert isinstance(event, p.DisconnectedEvent) and "bad signature" in event.reason


async def test_stream_replaced_stops_without_reconnecting(client, neo, emitted):
    await client.on_event(neo, np.StreamReplaced())
    (event,) = emitted.events
    assert isinstance(event, p.DisconnectedEvent) and event.will_reconnect is False
    await asyncio.wait_for(_until(lambda: neo.stop.await_count >= 1), 5)


async def test_temporary_ban_event(client, neo, emitted):
    await client.on_event(neo, np.TemporaryBan(Code=np.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    (event,) = emitted.events
    assert (
        event.will_reconnect is False and "send_to_too_many_people" in event.reason and "3600" in event.reason
    )


async def test_connect_failure_event(client, neo, emitted):
    await client.on_event(neo, np.ConnectFailure(Reason=np.SERVICE_UNAVAILABLE, Message="try later"))
    assert emitted.events == [
        p.DisconnectedEvent(device_id=7, reason="service_unavailable try later", will_reconnect=True)
    ]


# ============================================================================ message events


async def test_text_message_event(client):
    (event,) = await incoming(client, message_event(e2e.Message(conversation="Merhaba")))
    assert event.message == p.IncomingMessage(
        id="MSG1",
        chat=PEER,
        sender=PEER,
        sender_name="Ayşe",
        timestamp=1_700_000_100.0,
        kind=p.MessageKind.TEXT,
        text="Merhaba",
    )


async def test_extended_text_with_quote_in_a_group(client):
    context = e2e.ContextInfo(
        stanzaID="Q9", participant=ME, quotedMessage=e2e.Message(conversation="original"), isForwarded=True
    )
    content = e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(text="reply", contextInfo=context))
    (event,) = await incoming(client, message_event(content, chat=GROUP))
    msg = event.message
    assert (msg.chat, msg.sender, msg.text) == (GROUP, PEER, "reply")
    assert (msg.reply_to_id, msg.quoted_body, msg.is_forwarded) == ("Q9", "original", True)


async def test_image_message_event(client):
    image = e2e.ImageMessage(
        mimetype="image/jpeg",
        caption="pic",
        directPath="/p",
        mediaKey=b"k",
        fileSHA256=b"\x01\x02",
        fileEncSHA256=b"e",
        fileLength=10,
    )
    (event,) = await incoming(client, message_event(e2e.Message(imageMessage=image)))
    msg = event.message
    assert (msg.kind, msg.caption) == (p.MessageKind.IMAGE, "pic")
    assert (msg.media.mime_type, msg.media.size, msg.media.sha256) == ("image/jpeg", 10, "0102")
    assert msg.media.ref["direct_path"] == "/p" and base64.b64decode(msg.media.ref["media_key"]) == b"k"


async def test_view_once_video_message_event(client):
    video = e2e.VideoMessage(mimetype="video/mp4", caption="once", directPath="/v", fileLength=99)
    content = e2e.Message(viewOnceMessageV2=e2e.FutureProofMessage(message=e2e.Message(videoMessage=video)))
    (event,) = await incoming(client, message_event(content))
    assert (event.message.kind, event.message.view_once, event.message.caption) == (
        p.MessageKind.VIDEO,
        True,
        "once",
    )


async def test_audio_message_event(client):
    audio = e2e.AudioMessage(mimetype="audio/ogg; codecs=opus", directPath="/a", fileLength=5, PTT=True)
    (event,) = await incoming(client, message_event(e2e.Message(audioMessage=audio)))
    assert event.message.kind == p.MessageKind.AUDIO and event.message.media.ref["kind"] == "audio"


async def test_document_message_event(client):
    doc = e2e.DocumentMessage(
        mimetype="application/pdf", fileName="fatura.pdf", directPath="/d", fileLength=7, caption="invoice"
    )
    (event,) = await incoming(client, message_event(e2e.Message(documentMessage=doc)))
    msg = event.message
    assert (msg.kind, msg.media.filename, msg.caption) == (p.MessageKind.DOCUMENT, "fatura.pdf", "invoice")


async def test_sticker_message_event(client):
    sticker = e2e.StickerMessage(mimetype="image/webp", directPath="/s", fileLength=3)
    (event,) = await incoming(client, message_event(e2e.Message(stickerMessage=sticker)))
    assert event.message.kind == p.MessageKind.STICKER and event.message.media.mime_type == "image/webp"


async def test_location_message_event(client):
    location = e2e.LocationMessage(degreesLatitude=41.0, degreesLongitude=29.0, name="Office")
    (event,) = await incoming(client, message_event(e2e.Message(locationMessage=location)))
    msg = event.message
    assert (msg.kind, msg.latitude, msg.longitude, msg.text) == (p.MessageKind.LOCATION, 41.0, 29.0, "Office")


async def test_contact_message_event(client):
    contact = e2e.ContactMessage(displayName="Mehmet", vcard="BEGIN:VCARD\nEND:VCARD")
    (event,) = await incoming(client, message_event(e2e.Message(contactMessage=contact)))
    msg = event.message
    assert (msg.kind, msg.contact_name, msg.contact_vcard) == (
        p.MessageKind.CONTACT,
        "Mehmet",
        "BEGIN:VCARD\nEND:VCARD",
    )


async def test_poll_message_event(client):
    Option = e2e.PollCreationMessage.Option
    poll = e2e.PollCreationMessage(
        name="Lunch?",
        options=[Option(optionName="Kebab"), Option(optionName="Pide")],
        selectableOptionsCount=1,
    )
    (event,) = await incoming(client, message_event(e2e.Message(pollCreationMessageV3=poll)))
    msg = event.message
    assert (msg.kind, msg.poll_question, msg.poll_options) == (
        p.MessageKind.POLL,
        "Lunch?",
        ["Kebab", "Pide"],
    )


async def test_reaction_message_event(client):
    reaction = e2e.ReactionMessage(key=MessageKey(ID="TARGET1", fromMe=True), text="❤️")
    (event,) = await incoming(client, message_event(e2e.Message(reactionMessage=reaction)))
    msg = event.message
    assert (msg.kind, msg.target_id, msg.reaction) == (p.MessageKind.REACTION, "TARGET1", "❤️")


async def test_edit_message_event(client):
    proto = e2e.ProtocolMessage(
        type=e2e.ProtocolMessage.MESSAGE_EDIT,
        key=MessageKey(ID="TARGET2"),
        editedMessage=e2e.Message(conversation="new text"),
        timestampMS=1_700_000_200_000,
    )
    wrapped = e2e.Message(editedMessage=e2e.FutureProofMessage(message=e2e.Message(protocolMessage=proto)))
    (event,) = await incoming(client, message_event(wrapped, IsEdit=True))
    msg = event.message
    assert (msg.kind, msg.target_id, msg.text, msg.timestamp) == (
        p.MessageKind.EDIT,
        "TARGET2",
        "new text",
        1_700_000_200.0,
    )


async def test_revoke_message_event(client):
    proto = e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE, key=MessageKey(ID="TARGET3"))
    (event,) = await incoming(client, message_event(e2e.Message(protocolMessage=proto)))
    assert (event.message.kind, event.message.target_id) == (p.MessageKind.REVOKE, "TARGET3")


async def test_message_from_a_hidden_user_names_the_phone_number(client):
    source = np.MessageSource(Chat=jid(GROUP), Sender=jid("987654321@lid"), SenderAlt=jid(PEER), IsGroup=True)
    event = np.Message(
        Info=np.MessageInfo(MessageSource=source, ID="L1", Timestamp=1),
        Message=e2e.Message(conversation="hi"),
    )
    (converted,) = await incoming(client, event)
    assert converted.message.sender == PEER


async def test_protocol_noise_is_not_a_message(client):
    key_share = e2e.ProtocolMessage(type=e2e.ProtocolMessage.APP_STATE_SYNC_KEY_SHARE)
    assert await incoming(client, message_event(e2e.Message(protocolMessage=key_share))) == []
    only_keys = e2e.Message(senderKeyDistributionMessage=e2e.SenderKeyDistributionMessage(groupID=GROUP))
    assert await incoming(client, message_event(only_keys)) == []


async def test_events_are_emitted_one_at_a_time_in_arrival_order(backend, neo):
    release_first = asyncio.Event()
    seen = []

    async def slow_emit(event):
        seen.append(event.message.text)
        if event.message.text == "first":
            await release_first.wait()

    c = backend.create_client(device_id=12, jid=ME, emit=slow_emit)
    first = asyncio.create_task(c.on_event(neo, message_event(e2e.Message(conversation="first"), msg_id="1")))
    second = asyncio.create_task(
        c.on_event(neo, message_event(e2e.Message(conversation="second"), msg_id="2"))
    )
    await asyncio.wait_for(_until(lambda: seen == ["first"]), 5)
    for _ in range(20):
        await asyncio.sleep(0)
    assert seen == ["first"]  # the second waits while the first is still being stored
    release_first.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert seen == ["first", "second"]


async def test_message_event_reaches_emit(client, neo, emitted):
    await client.on_event(neo, message_event(e2e.Message(conversation="hello")))
    (event,) = emitted.events
    assert isinstance(event, p.MessageEvent) and event.device_id == 7 and event.message.text == "hello"


# ============================================================================ receipts, presence, groups


@pytest.mark.parametrize(
    ("pb_type", "expected"),
    [
        (np.Receipt.DELIVERED, p.ReceiptType.DELIVERED),
        (np.Receipt.READ, p.ReceiptType.READ),
        (np.Receipt.PLAYED, p.ReceiptType.PLAYED),
    ],
)
async def test_receipt_event(client, pb_type, expected):
    source = np.MessageSource(Chat=jid(PEER), Sender=jid(PEER))
    (event,) = await incoming(
        client, np.Receipt(MessageSource=source, MessageIDs=["A", "B"], Timestamp=1_700_000_300, Type=pb_type)
    )
    assert event == p.ReceiptEvent(
        chat=PEER, sender=PEER, message_ids=["A", "B"], type=expected, timestamp=1_700_000_300.0
    )


async def test_receipt_of_our_other_device_is_ignored(client):
    source = np.MessageSource(Chat=jid(PEER), Sender=jid(ME), IsFromMe=True)
    assert (
        await incoming(client, np.Receipt(MessageSource=source, MessageIDs=["A"], Type=np.Receipt.READ_SELF))
        == []
    )


async def test_presence_event(client):
    (event,) = await incoming(client, np.Presence(From=jid(PEER), Unavailable=True, LastSeen=1_700_000_400))
    assert event == p.PresenceEvent(jid=PEER, available=False, last_seen=1_700_000_400.0)


async def test_chat_presence_event(client):
    source = np.MessageSource(Chat=jid(GROUP), Sender=jid(PEER), IsGroup=True)
    (event,) = await incoming(
        client,
        np.ChatPresence(MessageSource=source, State=np.ChatPresence.COMPOSING, Media=np.ChatPresence.AUDIO),
    )
    assert event == p.ChatPresenceEvent(
        chat=GROUP, sender=PEER, state=p.ChatPresenceState.COMPOSING, media="audio"
    )


async def test_group_info_event_participants_and_settings(client):
    other = "905557777777@s.whatsapp.net"
    event = np.GroupInfoEvent(
        JID=jid(GROUP),
        Sender=jid(ME),
        Timestamp=1_700_000_500,
        Join=[jid(PEER)],
        Leave=[jid(other)],
        Promote=[jid(PEER)],
        Name=np.GroupName(Name="Renamed"),
        Topic=np.GroupTopic(Topic="New topic"),
        Announce=np.GroupAnnounce(IsAnnounce=True),
    )
    changes = await incoming(client, event)
    by_action = {(c.change, c.action): c for c in changes}
    assert by_action[(p.GroupChange.PARTICIPANTS, "add")].participants == [PEER]
    assert by_action[(p.GroupChange.PARTICIPANTS, "remove")].participants == [other]
    assert by_action[(p.GroupChange.PARTICIPANTS, "promote")].actor == ME
    assert by_action[(p.GroupChange.SUBJECT, "")].name == "Renamed"
    settings_change = by_action[(p.GroupChange.SETTINGS, "")]
    assert (settings_change.topic, settings_change.announce, settings_change.locked) == (
        "New topic",
        True,
        None,
    )
    assert all(c.group == GROUP and c.timestamp == 1_700_000_500.0 for c in changes)


async def test_member_leaving_by_themselves(client):
    (change,) = await incoming(client, np.GroupInfoEvent(JID=jid(GROUP), Sender=jid(PEER), Leave=[jid(PEER)]))
    assert (change.action, change.participants) == ("leave", [PEER])


async def test_joined_group_event(client):
    event = np.JoinedGroup(Reason="invite", GroupInfo=group_info_pb(), Sender=jid(PEER))
    (change,) = await incoming(client, event)
    assert (change.group, change.change, change.action, change.participants, change.name) == (
        GROUP,
        p.GroupChange.PARTICIPANTS,
        "join",
        [ME],
        "Team",
    )
