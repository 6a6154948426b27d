"""Fixtures of the page tests: devices, chats and messages stored directly (no session worker needed)."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Chat, Device, Message

_seq = itertools.count(1)


def make_device(organization, *, name="Phone", status="new", phone=""):
    n = next(_seq)
    phone = phone or (f"9055512{n:05d}" if status == "connected" else "")
    return Device.objects.create(
        organization=organization,
        name=name,
        status=status,
        phone=phone,
        jid=f"{phone}@s.whatsapp.net" if phone else "",
    )


def make_chat(device, *, jid=None, name="", unread=0, when=None):
    n = next(_seq)
    return Chat.objects.create(
        organization=device.organization,
        device=device,
        jid=jid or f"9055599{n:05d}@s.whatsapp.net",
        name=name,
        unread_count=unread,
        last_message_at=when or timezone.now(),
        last_message_preview=f"hello {n}",
    )


def make_message(chat, *, text="hi", from_me=False, status=None, when=None, **extra):
    n = next(_seq)
    return Message.objects.create(
        organization=chat.organization,
        device=chat.device,
        chat=chat,
        wa_id=f"3EB0TEST{n:08d}",
        from_me=from_me,
        sender_jid=chat.device.jid if from_me else chat.jid,
        sender_name="" if from_me else "Peer",
        text=text,
        status=status or ("sent" if from_me else "received"),
        timestamp=when or timezone.now(),
        **extra,
    )


def make_history(chat, count: int):
    start = timezone.now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            organization=chat.organization,
            device=chat.device,
            chat=chat,
            wa_id=f"3EB0HIST{chat.pk}X{i:07d}",
            from_me=i % 2 == 0,
            sender_jid=chat.jid,
            text=f"message number {i}",
            status="read" if i % 2 == 0 else "received",
            timestamp=start + timedelta(seconds=i),
        )
        for i in range(count)
    )


@pytest.fixture
def device(org):
    return make_device(org, name="Support", status="connected")


@pytest.fixture
def other_device(other_org):
    return make_device(other_org, name="Theirs", status="connected")


@pytest.fixture
def admin_client(admin_user):
    from tests.conftest import client_for

    return client_for(admin_user)
