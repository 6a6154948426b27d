"""The worker's side of a ringing call (services.calls.answer_call): what the number's setting makes it do, and
what the call.offer then says, when rejecting works, fails, or is not asked for."""

import pytest

from messaging.models import Device, Message, MessageStatus
from messaging.services import calls
from messaging.whatsapp import protocol as p
from tests.conftest import make_organization

pytestmark = pytest.mark.django_db(transaction=True)

CALLER = "905551112233@s.whatsapp.net"
LID = "123456789012345@lid"


class Phone:
    """A client whose reject_call does what the test says."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.rejected: list[tuple[str, str]] = []

    async def reject_call(self, *, caller: str, call_id: str) -> None:
        if self.error is not None:
            raise self.error
        self.rejected.append((caller, call_id))


@pytest.fixture
def answer(runtime_harness):
    """answer_call on the runtime loop, its database calls in the runtime's DB threads (as in a worker)."""
    return lambda phone, event: runtime_harness.run(calls.answer_call(phone, event))


@pytest.fixture
def device():
    org = make_organization("Calls")
    return Device.objects.create(
        organization=org, name="Line", jid="905550000009@s.whatsapp.net", phone="905550000009"
    )


def offer(device, **extra) -> p.CallOfferEvent:
    return p.CallOfferEvent(device_id=device.pk, call_id="C1", caller=CALLER, **extra)


def test_on_it_rejects_on_the_offers_jid_and_queues_the_reply(device, answer):
    Device.objects.filter(pk=device.pk).update(reject_calls=True, reject_call_message="Yazın lütfen")
    phone, event = Phone(), offer(device, caller_lid=LID)
    assert answer(phone, event) is True
    assert phone.rejected == [(LID, "C1")]
    assert (event.rejected, event.reply_sent, event.reject_error) == (True, True, "")
    reply = Message.objects.select_related("chat").get(device=device, text="Yazın lütfen")
    assert (reply.status, reply.chat.jid, reply.from_me) == (MessageStatus.QUEUED, CALLER, True)


def test_off_it_does_nothing(device, answer):
    Device.objects.filter(pk=device.pk).update(reject_call_message="Yazın lütfen")
    phone, event = Phone(), offer(device)
    assert answer(phone, event) is False
    assert phone.rejected == [] and (event.rejected, event.reply_sent) == (False, False)
    assert not Message.objects.filter(device=device).exists()


def test_a_failed_rejection_is_told_and_sends_no_reply(device, answer):
    Device.objects.filter(pk=device.pk).update(reject_calls=True, reject_call_message="Yazın")
    event = offer(device)
    assert answer(Phone(p.NotConnected("The device is not connected.")), event) is False
    assert (event.rejected, event.reply_sent, event.reject_error) == (
        False,
        False,
        "The device is not connected.",
    )
    assert not Message.objects.filter(device=device).exists()


def test_a_group_call_is_rejected_without_a_reply(device, answer):
    Device.objects.filter(pk=device.pk).update(reject_calls=True, reject_call_message="Yazın")
    event = offer(device, is_group=True, group="120363000000000001@g.us")
    assert answer(Phone(), event) is False
    assert (event.rejected, event.reply_sent) == (True, False)
