"""Labels and chat organisation on the sandbox, end to end: labels changed on the simulated phone arrive as
label.edit / label.association (stored, pushed live, sent to webhooks), and a chat pinned, labelled or assigned
in one tab shows in every other open tab of the organization without a reload."""

import json

import pytest

from messaging.models import Chat, Label, WebhookDelivery, WebhookEndpoint
from messaging.services import chats as chat_services
from tests.messaging.test_live import _open, _receive

pytestmark = pytest.mark.django_db(transaction=True)


def _frames_until(wa, socket, needle: str, *, limit: int = 10) -> str:
    """The socket's frames until one holds `needle` (the events before it may render other fragments)."""
    for _ in range(limit):
        html = _receive(wa, socket)
        if needle in html:
            return html
    raise AssertionError(f"no frame with {needle!r}")


def test_labels_changed_on_the_phone_are_stored_pushed_and_sent_to_webhooks(wa, org, owner):
    device = wa.linked_device(org)
    WebhookEndpoint.objects.create(
        organization=org,
        url="https://hooks.example.com/wa",
        events=["label.edit", "label.association"],
        secret="whsec_x",
    )
    peer = wa.peers[0]
    chat_jid = f"{peer}@s.whatsapp.net"
    socket = _open(wa, owner, f"/ws/live/?device={device.pk}")

    wa.sandbox.phone_edit_label(phone=device.phone, label_id="7", name="Yeni sipariş", color=5)
    edit = wa.wait_event("label.edit", device=device)
    assert edit["label_id"] == "7" and edit["name"] == "Yeni sipariş" and edit["color"] == 5
    label = Label.objects.get(device=device, label_id="7")
    assert (label.name, label.color, label.organization_id) == ("Yeni sipariş", 5, org.pk)
    # The open inbox re-reads its list (the label's filter and chips change with it).
    assert f'id="chat-list-{device.pk}-refresh"' in _frames_until(wa, socket, "-refresh")

    wa.sandbox.phone_label_chat(phone=device.phone, chat=chat_jid, label_id="7", labeled=True)
    association = wa.wait_event("label.association", device=device)
    assert association["chat_id"] == chat_jid and association["labeled"] is True
    chat = Chat.objects.get(device=device, jid=chat_jid)
    assert list(chat.labels.all()) == [label]
    html = _frames_until(wa, socket, f'id="chat-{chat.pk}-state"')
    assert "Yeni sipariş" in html and "label-color-5" in html and 'hx-swap-oob="true"' in html

    wa.sandbox.phone_label_chat(phone=device.phone, chat=chat_jid, label_id="7", labeled=False)
    wa.wait_event("label.association", device=device, predicate=lambda d: d["labeled"] is False)
    assert not chat.labels.exists()
    wa.sandbox.phone_edit_label(phone=device.phone, label_id="7", deleted=True)
    wa.wait_event("label.edit", device=device, predicate=lambda d: d["deleted"])
    assert not Label.objects.filter(device=device).exists()

    sent = list(WebhookDelivery.objects.filter(organization=org).order_by("pk").values_list("event", "body"))
    assert [event for event, _body in sent] == [
        "label.edit",
        "label.association",
        "label.association",
        "label.edit",
    ]
    assert json.loads(sent[1][1])["payload"]["chat_id"] == chat_jid
    wa.run(socket.disconnect())


def test_a_chat_organised_in_one_tab_shows_in_another_open_tab(wa, org, owner, operator):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    chat_jid = f"{peer}@s.whatsapp.net"
    other_tab = _open(wa, operator, f"/ws/live/?device={device.pk}")

    # Through WhatsApp (the sandbox) and back: the same service as the API's /chat/{jid}/pin.
    chat = chat_services.set_chat_pinned(
        organization=org, device=device, chat=chat_jid, pinned=True, actor=owner
    )
    html = _frames_until(wa, other_tab, f'id="chat-{chat.pk}-state"')
    assert "📌" in html and "Unpin" in html  # the operator may change it back: their bar says so
    assert f'id="chat-list-{device.pk}-refresh"' in html and 'hx-trigger="load"' in html

    label = chat_services.save_label(organization=org, device=device, name="Kargo", color=2, actor=owner)
    chat_services.set_chat_label(
        organization=org, device=device, chat=chat_jid, label_id=label.label_id, labeled=True, actor=owner
    )
    html = _frames_until(wa, other_tab, "Kargo")
    assert "label-color-2" in html

    chat_services.assign_chat(
        organization=org, device=device, chat=chat_jid, assignee=operator.email, actor=owner
    )
    html = _frames_until(wa, other_tab, operator.email)
    assert f'id="chat-{chat.pk}-state"' in html
    assert Chat.objects.get(pk=chat.pk).assigned_to == operator
    wa.run(other_tab.disconnect())


def test_a_member_of_another_organization_hears_nothing_of_it(wa, org, owner, outsider):
    device = wa.linked_device(org)
    socket = _open(wa, outsider)
    chat_services.set_chat_archived(
        organization=org, device=device, chat=f"{wa.peers[0]}@s.whatsapp.net", archived=True, actor=owner
    )
    assert wa.run(socket.receive_nothing(timeout=0.5))
    wa.run(socket.disconnect())


def test_the_simulated_phone_panel_labels_a_chat_on_the_phone(wa, org, owner, settings):
    from django.urls import reverse

    from tests.conftest import client_for

    settings.WA_BACKEND = "sandbox"
    device = wa.linked_device(org)
    peer = wa.peers[0]
    browser = client_for(owner)
    assert 'id="sandbox-phone-label"' in browser.get(reverse("messaging:sandbox")).content.decode()
    url = reverse("messaging:sandbox_label", args=[device.pk])
    page = browser.post(url, {"chat": "+" + peer, "label_name": "Yeni müşteri"}, follow=True).content.decode()
    assert "The phone put the label on the chat." in page
    wa.wait_event("label.association", device=device)
    chat = Chat.objects.get(device=device, jid=f"{peer}@s.whatsapp.net")
    assert [label.name for label in chat.labels.all()] == ["Yeni müşteri"]
    refused = browser.post(url, {"chat": "hello", "label_name": "x"}, follow=True).content.decode()
    assert "Chat: enter a phone number with its country code" in refused
