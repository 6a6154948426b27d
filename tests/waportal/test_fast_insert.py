"""fast_insert stores exactly the row save() would, and leaves models with signal receivers to save()."""

import pytest
from django.db.models import Model, signals
from django.forms.models import model_to_dict

from accounts.models import AuditEvent
from messaging.models import Message
from tests.pages.conftest import make_chat, make_device
from waportal import fast_insert

pytestmark = pytest.mark.django_db


def _message(chat, wa_id):
    return Message(
        organization=chat.organization,
        device=chat.device,
        chat=chat,
        wa_id=wa_id,
        from_me=True,
        kind="location",
        text="Ünïcode ✓",
        payload={"latitude": 41.0, "nested": {"list": [1, "two"]}},
        status="queued",
    )


def test_the_row_is_the_one_save_stores(org):
    chat = make_chat(make_device(org, status="connected"))
    saved, inserted = _message(chat, "SAVED"), _message(chat, "INSERTED")
    for message in (saved, inserted):
        message.timestamp = message.created_at = chat.created_at
    saved.save()
    assert fast_insert.insert(inserted) is inserted
    assert inserted.pk and inserted.pk != saved.pk and not inserted._state.adding
    fields = model_to_dict(Message.objects.get(pk=saved.pk), exclude=["id", "wa_id"])
    assert model_to_dict(Message.objects.get(pk=inserted.pk), exclude=["id", "wa_id"]) == fields


def test_a_model_with_receivers_is_saved_with_its_signals(org):
    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.action, created))

    signals.post_save.connect(receiver, sender=AuditEvent)
    try:
        fast_insert.insert(AuditEvent(organization=org, action="test.signal"))
    finally:
        signals.post_save.disconnect(receiver, sender=AuditEvent)
    assert seen == [("test.signal", True)]
    assert AuditEvent.objects.filter(organization=org, action="test.signal").exists()


def test_a_model_with_its_own_save_keeps_it(org, monkeypatch):
    calls = []

    def own_save(self, *args, **kwargs):
        calls.append(self.action)
        return Model.save(self, *args, **kwargs)

    monkeypatch.setattr(AuditEvent, "save", own_save)
    fast_insert.insert(AuditEvent(organization=org, action="test.own_save"))
    assert calls == ["test.own_save"]
