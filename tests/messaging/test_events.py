"""Event handling: a received event is stored even when the database refuses it for a while."""

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError

from messaging import events
from messaging.models import Message
from messaging.whatsapp import protocol
from tests.webhooks.conftest import make_device

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_received_message_is_retried_on_a_busy_database_not_dropped(org, monkeypatch, caplog):
    device = make_device(org)
    real_persist, refusals = events.persist, []

    def busy_twice(event):
        if len(refusals) < 2:
            refusals.append(event)
            raise OperationalError("database is locked")
        return real_persist(event)

    monkeypatch.setattr(events, "persist", busy_twice)
    monkeypatch.setattr(events, "PERSIST_RETRY_DELAYS", (0.01,))
    sender = "905559990001@s.whatsapp.net"
    message = protocol.IncomingMessage(id="BUSY1", chat=sender, sender=sender, text="still here")

    outcomes = async_to_sync(events.handle)(protocol.MessageEvent(device_id=device.pk, message=message))

    assert len(refusals) == 2
    assert [o.name for o in outcomes] == ["message"]
    assert Message.objects.get(device=device, wa_id="BUSY1").text == "still here"
    assert "try 3 again" in caplog.text


def test_a_bug_is_not_retried(org, monkeypatch):
    device = make_device(org)
    calls = []

    def broken(event):
        calls.append(event)
        raise ValueError("a bug")

    monkeypatch.setattr(events, "persist", broken)
    event = protocol.ReceiptEvent(
        device_id=device.pk,
        chat="x@s.whatsapp.net",
        sender="x@s.whatsapp.net",
        message_ids=["A"],
        type="read",
    )
    with pytest.raises(ValueError):
        async_to_sync(events.handle)(event)
    assert len(calls) == 1
