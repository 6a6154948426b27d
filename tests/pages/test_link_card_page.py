"""The link card when this server cannot reach WhatsApp, and "Add and link" landing on the QR code (issue 16)."""

from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging import events, live
from messaging.models import Device, DeviceLease
from messaging.whatsapp import protocol
from tests.pages.conftest import make_device

RAW = "failed to dial whatsapp web websocket: dial tcp: lookup web.whatsapp.com: no such host"


def _unreachable(org):
    device = make_device(org, name="Offline")
    events.persist(
        protocol.DisconnectedEvent(
            device_id=device.pk, reason=RAW, will_reconnect=True, cause=protocol.DisconnectCause.UNREACHABLE
        )
    )
    device.refresh_from_db()
    return device


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("en", "Can't reach WhatsApp from this server — check its network."),
        ("tr", "Bu sunucu WhatsApp'a ulaşamıyor — sunucunun ağını kontrol edin."),
    ],
)
def test_the_link_card_says_whatsapp_cannot_be_reached_not_the_dial_error(owner_client, org, language, said):
    device = _unreachable(org)
    assert device.status == "disconnected" and device.unreachable
    body = owner_client.get(
        reverse("messaging:device", args=[device.pk]), HTTP_ACCEPT_LANGUAGE=language
    ).content.decode()
    card = body[body.index(f'id="device-{device.pk}-link"') :]
    card = card[: card.index("</div>")]
    assert "data-unreachable" in card and said in unescape(card)
    assert "dial tcp" not in body  # neither in the card nor in the badge
    # The same, pushed live to a page that is open.
    with_language = live.render_event(event="device.disconnected", device=device, data={})
    assert any("data-unreachable" in part for part in with_language)


@pytest.mark.django_db
def test_the_next_attempt_clears_it(operator_client, org, settings):
    settings.WA_QR_WAIT_SECONDS = 0.2
    device = _unreachable(org)
    operator_client.post(reverse("messaging:device_link", args=[device.pk]), HTTP_HX_REQUEST="true")
    device.refresh_from_db()
    assert not device.unreachable and device.status_reason == ""


@pytest.mark.django_db
def test_the_api_says_it_in_words_too(org):
    device = _unreachable(org)
    assert events.device_payload(device)["reason"] == protocol.UNREACHABLE_REASON
    assert Device.objects.get(pk=device.pk).status_reason == protocol.UNREACHABLE_REASON


@pytest.mark.django_db(transaction=True)
def test_add_and_link_opens_the_new_number_on_its_qr_code(wa, org):
    """One step: the form that adds a number starts linking, and the page it lands on shows the QR code."""
    from tests.conftest import add_member, client_for

    op = client_for(add_member(org, "operator"))
    response = op.post(reverse("messaging:device_create"), {"name": "Sales"}, follow=True)
    device = org.devices.get(name="Sales")
    assert response.redirect_chain == [(reverse("messaging:device", args=[device.pk]), 302)]
    device.refresh_from_db()
    assert device.status == "qr_waiting" and device.qr_code
    body = response.content.decode()
    assert f'data-qr="{device.qr_code}"' in body and "<svg" in body
    assert "Scan the QR code with WhatsApp on your phone." in unescape(body)


@pytest.mark.django_db
def test_add_and_link_without_a_worker_still_adds_the_number(operator_client, org, settings):
    settings.WA_QR_WAIT_SECONDS = 0.2
    response = operator_client.post(reverse("messaging:device_create"), {"name": "Later"}, follow=True)
    device = org.devices.get(name="Later")
    assert response.redirect_chain[-1][0] == reverse("messaging:device", args=[device.pk])
    assert device.wanted  # a worker that starts takes it up and shows the QR code live
    assert "The QR code appears in a moment." in response.content.decode()


@pytest.mark.django_db
def test_a_connected_card_shows_the_number_formatted_as_everywhere_else(owner_client, org):
    """ "Connected. +1 999-000-0003 (Sandbox 0003)", as the numbers page writes it; not "+19990000003"."""
    device = make_device(org, name="Sandbox", status="connected", phone="19990000003")
    Device.objects.filter(pk=device.pk).update(push_name="Sandbox 0003")
    # Held by a live session worker, so the card says connected (not "no session worker holds it").
    DeviceLease.objects.create(
        device=device, worker_id="worker-a", expires_at=timezone.now() + timedelta(seconds=60)
    )
    body = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    card = body[body.index(f'id="device-{device.pk}-link"') :]
    card = unescape(card[: card.index("</div>")])
    assert "Connected. +1 999-000-0003 (Sandbox 0003)" in card
    assert "+19990000003" not in card
    # The same card pushed live to an open page.
    device.refresh_from_db()
    pushed = "".join(live.render_event(event="device.connected", device=device, data={}))
    assert "+1 999-000-0003" in unescape(pushed) and "+19990000003" not in pushed
