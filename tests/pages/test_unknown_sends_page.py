"""A message whose sending is unknown: shown as "Sent?" with a way to send it again, for this organization only."""

import pytest
from django.urls import reverse

from messaging.models import MessageStatus, SentMessageId
from tests.pages.conftest import make_chat, make_message


def _unknown(device):
    chat = make_chat(device)
    message = make_message(chat, from_me=True, status=MessageStatus.UNKNOWN, text="did it go?")
    SentMessageId.objects.create(device=device, message_id=message.wa_id)
    return chat, message


def test_an_unknown_send_says_so_and_offers_to_send_again(operator_client, device):
    chat, message = _unknown(device)
    body = operator_client.get(reverse("messaging:conversation", args=[device.pk, chat.pk])).content.decode()
    assert 'data-status="unknown"' in body and "Sent?" in body
    assert reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, "resend"]) in body


def test_send_again_queues_it_and_forgets_the_cut_off_attempt(operator_client, device):
    chat, message = _unknown(device)
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, "resend"])
    response = operator_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "field-error" not in response.content.decode()
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 0)
    assert not SentMessageId.objects.filter(device=device).exists()
    assert device.organization.audit_events.filter(action="message.resend").exists()


def test_only_an_unknown_send_can_be_sent_again(operator_client, device):
    chat = make_chat(device)
    message = make_message(chat, from_me=True, status=MessageStatus.SENT)
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, "resend"])
    body = operator_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "field-error" in body and "can be sent again" in body
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_a_viewer_cannot_send_again(viewer_client, device):
    chat, message = _unknown(device)
    url = reverse("messaging:message_action", args=[device.pk, chat.pk, message.pk, "resend"])
    assert viewer_client.post(url).status_code == 403
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN


@pytest.mark.django_db
def test_another_organization_cannot_send_again(owner_client, other_device):
    chat, message = _unknown(other_device)
    url = reverse("messaging:message_action", args=[other_device.pk, chat.pk, message.pk, "resend"])
    assert owner_client.post(url).status_code == 404
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
