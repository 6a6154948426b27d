"""waportal.storable_text: dashboard input the database could not store is a 400 naming the field."""

import pytest
from django.urls import reverse

from messaging.models import Device, DeviceStatus, Message

PHONE = "905551112233"


@pytest.fixture
def device(org):
    return Device.objects.create(
        organization=org,
        name="Phone",
        jid="905550000000@s.whatsapp.net",
        phone="905550000000",
        status=DeviceStatus.DISCONNECTED,
    )


@pytest.mark.django_db
def test_a_dashboard_form_with_a_nul_is_a_400_naming_the_field(owner_client, device):
    answer = owner_client.post(
        reverse("messaging:compose", args=[device.pk]), {"to": PHONE, "kind": "text", "text": "a\x00b"}
    )
    assert answer.status_code == 400 and answer.content.decode().startswith("text:")
    # what Django decodes from a form is never a surrogate: invalid UTF-8 becomes U+FFFD, and is sent as such
    answer = owner_client.post(
        reverse("messaging:compose", args=[device.pk]),
        "to=905551112233&kind=text&text=%ED%A0%80",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code < 500
    assert Message.objects.get().text == "\ufffd\ufffd\ufffd"


@pytest.mark.django_db
def test_a_nul_in_a_query_is_a_400_and_the_api_answers_in_its_own_envelope(owner_client, device, api_key):
    answer = owner_client.get(reverse("messaging:compose", args=[device.pk]), {"to": "a\x00"})
    assert answer.status_code == 400 and answer.content.decode().startswith("to:")
    # the REST API is left to its parser: its answer is the API's envelope
    answer = owner_client.get(
        "/user/info", {"phone": "a\x00"}, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert answer.status_code == 400 and answer.json()["code"] == "VALIDATION_ERROR"
