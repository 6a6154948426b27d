"""What the neonize backend makes of WhatsApp's events over a day: neonize's real protobuf events, and for the
parts that store them, our real event handler on the test database."""

import asyncio
import hashlib
import threading

import pytest
from asgiref.sync import sync_to_async
from neonize.exc import GetProfilePictureError
from neonize.proto import Neonize_pb2 as np
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

from messaging import events
from messaging.whatsapp import protocol as p
from messaging.whatsapp.neonize.backend import NeonizeBackend
from tests.conftest import make_organization
from tests.messaging.neonize_harness import (
    GROUP,
    ME,
    PEER,
    MemoryMessageIds,
    client_on_real_neonize,
    deliver_from_go,
    incoming,
    insert_device,
    jid,
    message_event,
    until,
)


@pytest.fixture
def client(neonize_client):
    return neonize_client


def _device():
    from messaging.models import Device

    return Device.objects.create(organization=make_organization(), name="Shop", jid=ME, wanted=True)


async def _stored(emit_events: list[p.Event], device_id: int) -> None:
    for event in emit_events:
        event.device_id = device_id
        await sync_to_async(events.persist)(event)


# ---------------------------------------------------------------------------------------------- 5. acks


async def test_go_is_not_held_while_a_message_is_stored(tmp_path, monkeypatch):
    """whatsmeow acknowledges a message once neonize's Go handler has queued it (a buffered channel), before
    Python sees it: blocking Go's callback bought no safety, only delayed every later event."""
    release = threading.Event()
    stored = []

    async def slow_store(event):
        await asyncio.to_thread(release.wait, 10)
        stored.append(event)

    c = await client_on_real_neonize(tmp_path, monkeypatch, slow_store)

    def go_thread():
        deliver_from_go(c.neo, message_event(e2e.Message(conversation="first"), msg_id="A"))
        deliver_from_go(c.neo, message_event(e2e.Message(conversation="second"), msg_id="B"))
        return list(stored)

    assert await asyncio.wait_for(asyncio.to_thread(go_thread), 5) == []  # Go went on while storing
    release.set()
    await asyncio.wait_for(until(lambda: len(stored) == 2), 5)
    assert [e.message.text for e in stored] == ["first", "second"]  # still one at a time, in order


@pytest.mark.django_db(transaction=True)
async def test_a_message_delivered_again_after_a_restart_is_stored_once(tmp_path, monkeypatch):
    from messaging.models import Message

    device = await sync_to_async(_device)()
    event = message_event(e2e.Message(conversation="order #12"), msg_id="3EB0AGAIN")
    for _ in range(2):  # the first run, then a restarted process to which WhatsApp delivers it again
        backend = NeonizeBackend(
            message_ids=MemoryMessageIds, session_dir=tmp_path / "sessions", database_url=""
        )
        c = backend.create_client(device_id=device.pk, jid=ME, emit=None)
        await _stored(await c.translate(event), device.pk)
    assert await Message.objects.filter(device=device, wa_id="3EB0AGAIN").acount() == 1


# ---------------------------------------------------------------------------------------------- 6. polls


def _vote(poll_id: str, *, sender=PEER) -> np.Message:
    update = e2e.PollUpdateMessage(
        pollCreationMessageKey=MessageKey(remoteJID=PEER, fromMe=True, ID=poll_id),
        vote=e2e.PollEncValue(encPayload=b"\x01" * 16, encIV=b"\x02" * 12),
        senderTimestampMS=1_700_000_200_000,
    )
    return message_event(e2e.Message(pollUpdateMessage=update), sender=sender, msg_id=f"VOTE-{sender[:4]}")


def _poll_message(device, wa_id: str):
    from messaging.models import Chat, Message

    chat = Chat.objects.create(organization_id=device.organization_id, device=device, jid=PEER)
    payload = {"poll_question": "Lunch?", "poll_options": ["Kebab", "Pide", "Salad"]}
    return Message.objects.create(
        organization_id=device.organization_id,
        device=device,
        chat=chat,
        wa_id=wa_id,
        from_me=True,
        kind="poll",
        payload=payload,
        status="sent",
    )


@pytest.mark.django_db(transaction=True)
async def test_a_poll_vote_is_decrypted_and_stored_on_the_poll(client, neo):
    device = await sync_to_async(_device)()
    poll = await sync_to_async(_poll_message)(device, "3EB0POLL")
    sha = lambda text: hashlib.sha256(text.encode()).digest()  # noqa: E731 (how WhatsApp names an option)
    neo.decrypt_poll_vote.return_value = e2e.PollVoteMessage(selectedOptions=[sha("Pide"), sha("Salad")])
    vote = _vote("3EB0POLL")
    (converted,) = await incoming(client, vote)
    neo.decrypt_poll_vote.assert_awaited_once_with(vote)
    assert (converted.message.kind, converted.message.target_id) == (p.MessageKind.POLL_VOTE, "3EB0POLL")
    await _stored([converted], device.pk)
    await poll.arefresh_from_db()
    assert poll.payload["poll_votes"] == {PEER: ["Pide", "Salad"]}
    # A changed mind replaces the vote; an empty one withdraws it.
    neo.decrypt_poll_vote.return_value = e2e.PollVoteMessage(selectedOptions=[])
    await _stored(await incoming(client, _vote("3EB0POLL")), device.pk)
    await poll.arefresh_from_db()
    assert poll.payload["poll_votes"] == {}


async def test_a_vote_whatsmeow_cannot_decrypt_is_skipped(client, neo):
    from neonize.exc import DecryptPollVoteError

    neo.decrypt_poll_vote.side_effect = DecryptPollVoteError("failed to get original message secret key")
    assert await incoming(client, _vote("3EB0OLD")) == []


def _store_with_secret(backend, device_id: int, *, chat: str, sender: str, message_id: str, secret: bytes):
    """The device's whatsmeow store, made by neonize's Go library, holding the secret of one message."""
    import sqlite3

    from neonize.aioze.client import ClientFactory

    path = backend.session_path(device_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert ClientFactory.get_all_devices_from_db(str(path)) == []  # whatsmeow makes its tables
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,"
            " signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,"
            " adv_device_sig) VALUES (?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            ["905550000001:12@s.whatsapp.net", *[b"\0" * n for n in (32, 32, 32, 64, 32, 8, 64, 32, 64)]],
        )
        db.execute(
            "INSERT INTO whatsmeow_message_secrets (our_jid, chat_jid, sender_jid, message_id, key) VALUES (?, ?, ?, ?, ?)",
            ["905550000001:12@s.whatsapp.net", chat, sender, message_id, secret],
        )


def _encrypted_reaction(
    emoji: str, *, secret: bytes, message_id: str, author: str, reactor: str
) -> np.Message:
    """What a phone sends in a community announcement group, encrypted as in whatsmeow's EncryptReaction."""
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = f"{message_id}{author}{reactor}Enc Reaction".encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    iv = os.urandom(12)
    payload = AESGCM(key).encrypt(iv, e2e.ReactionMessage(text=emoji).SerializeToString(), None)
    target = MessageKey(remoteJID=GROUP, fromMe=False, ID=message_id, participant=author)
    encrypted = e2e.EncReactionMessage(targetMessageKey=target, encPayload=payload, encIV=iv)
    return message_event(
        e2e.Message(encReactionMessage=encrypted), sender=reactor, chat=GROUP, msg_id="ENCR1"
    )


async def test_an_encrypted_reaction_is_decrypted_as_a_reaction(client, backend):
    author, reactor, secret = "905557777777@s.whatsapp.net", PEER, bytes(range(32))
    await sync_to_async(_store_with_secret)(
        backend, client.device_id, chat=GROUP, sender=author, message_id="ANNOUNCE1", secret=secret
    )
    event = _encrypted_reaction("🔥", secret=secret, message_id="ANNOUNCE1", author=author, reactor=reactor)
    (reacted,) = await incoming(client, event)
    msg = reacted.message
    assert (msg.kind, msg.target_id, msg.reaction, msg.sender) == (
        p.MessageKind.REACTION,
        "ANNOUNCE1",
        "🔥",
        PEER,
    )
    # A reaction to a message whose secret whatsmeow does not keep is skipped, not stored as "no reaction".
    other = _encrypted_reaction("👍", secret=secret, message_id="UNKNOWN", author=author, reactor=reactor)
    assert await incoming(client, other) == []


async def test_an_encrypted_reaction_on_the_shared_postgres_store_by_lid(whatsmeow_postgres, emitted, neo):
    """The store shared by all devices: the device's own secret, stored under the author's LID."""
    import psycopg

    url = whatsmeow_postgres
    author_pn, author_lid, secret = "905557777777@s.whatsapp.net", "87654321@lid", bytes(range(32, 64))
    with psycopg.connect(url) as conn:
        insert_device(conn.execute, "905550000001:12@s.whatsapp.net")
        insert_device(conn.execute, "905559999999:3@s.whatsapp.net")  # another device's session
        conn.execute("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES ('87654321', '905557777777')")
        for our, key in (
            ("905559999999:3@s.whatsapp.net", b"x" * 32),
            ("905550000001:12@s.whatsapp.net", secret),
        ):
            conn.execute(
                "INSERT INTO whatsmeow_message_secrets (our_jid, chat_jid, sender_jid, message_id, key)"
                " VALUES (%s, %s, %s, 'ANNOUNCE2', %s)",
                [our, GROUP, author_lid, key],
            )
    backend = NeonizeBackend(message_ids=MemoryMessageIds, database_url=url)
    c = backend.create_client(device_id=3, jid=ME, emit=emitted)
    c.neo = neo
    # The key is made with the sender the secret is stored under (the LID), though the key names the number.
    event = _encrypted_reaction("🎉", secret=secret, message_id="ANNOUNCE2", author=author_lid, reactor=PEER)
    event.Message.encReactionMessage.targetMessageKey.participant = author_pn
    (reacted,) = await incoming(c, event)
    assert (reacted.message.target_id, reacted.message.reaction) == ("ANNOUNCE2", "🎉")


# ---------------------------------------------------------------------------------------------- 7. LIDs


async def test_group_changes_in_a_lid_group_name_phone_numbers(client, neo):
    phones = {"111": PEER, "222": ME}

    async def pn_from_lid(lid):
        return jid(phones[lid.User]) if lid.User in phones else np.JID()

    neo.get_pn_from_lid.side_effect = pn_from_lid
    event = np.GroupInfoEvent(
        JID=jid(GROUP),
        Sender=jid("222@lid"),
        Timestamp=1_700_000_500,
        Join=[jid("111@lid")],
        Leave=[jid("222@lid"), jid("333@lid")],
    )
    changes = await incoming(client, event)
    by_action = {c.action: c for c in changes}
    assert by_action["add"].participants == [PEER] and by_action["add"].actor == ME
    assert by_action["leave"].participants == [ME]  # the actor left by themselves: matched by phone number
    assert by_action["remove"].participants == ["333@lid"]  # no phone number known: the LID stays


# ---------------------------------------------------------------------------------------------- 8. presence


async def test_presence_without_last_seen_is_unknown_not_year_one(client):
    go_zero_time = -62135596800  # time.Time{}.Unix(): what neonize sends when WhatsApp gave no last-seen
    (event,) = await incoming(client, np.Presence(From=jid(PEER), Unavailable=True, LastSeen=go_zero_time))
    assert event == p.PresenceEvent(jid=PEER, available=False, last_seen=None)


# ---------------------------------------------------------------------------------------------- 9. avatars


async def test_a_hidden_profile_picture_is_no_picture(client, neo):
    neo.get_profile_picture.side_effect = GetProfilePictureError(
        "the user has hidden their profile picture from you"  # whatsmeow's ErrProfilePictureUnauthorized
    )
    assert await client.avatar(jid=PEER) is None
