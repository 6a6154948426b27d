"""Compose: operators only, every kind's form, errors next to the field, queued when the number is offline."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from messaging.models import Message

KINDS = ["text", "image", "audio", "document", "video", "sticker", "contact", "link", "location", "poll"]


@pytest.mark.parametrize("who", ["owner_client", "operator_client"])
@pytest.mark.parametrize("kind", KINDS)
def test_compose_renders_each_kind_for_those_who_may_send(request, who, kind, device):
    client = request.getfixturevalue(who)
    response = client.get(reverse("messaging:compose", args=[device.pk]), {"kind": kind})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'name="kind" value="{kind}"' in body
    if kind in ("image", "video", "audio", "document", "sticker"):
        assert 'type="file"' in body and 'id="upload-progress"' in body


def test_viewer_may_not_compose(viewer_client, device):
    assert viewer_client.get(reverse("messaging:compose", args=[device.pk])).status_code == 403
    response = viewer_client.post(reverse("messaging:compose", args=[device.pk]), {"kind": "text", "to": "905551112233", "text": "hi"})
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_another_organizations_number_is_404(owner_client, other_device):
    assert owner_client.get(reverse("messaging:compose", args=[other_device.pk])).status_code == 404
    response = owner_client.post(reverse("messaging:compose", args=[other_device.pk]), {"kind": "text", "to": "905551112233", "text": "x"})
    assert response.status_code == 404
    assert not Message.objects.exists()


def _errors(body: str) -> set[str]:
    import re

    return set(re.findall(r'class="field-error" data-field="([a-z_]+)"', body))


@pytest.mark.parametrize(
    "data, fields",
    [
        ({"kind": "text", "to": "905551112233", "text": ""}, {"text"}),
        ({"kind": "text", "to": "not a number", "text": "hi"}, {"to"}),
        ({"kind": "image", "to": "905551112233"}, {"file"}),
        ({"kind": "contact", "to": "905551112233", "contact_name": "Ali"}, {"contact_phone"}),
        ({"kind": "link", "to": "905551112233", "link": "no link"}, {"link"}),
        ({"kind": "location", "to": "905551112233", "latitude": "100", "longitude": "20"}, {"latitude"}),
        ({"kind": "poll", "to": "905551112233", "question": "Q?", "options": "only one"}, {"options"}),
        ({"kind": "poll", "to": "905551112233", "question": "", "options": "a\nb", "max_answer": "5"}, {"question", "max_answer"}),
    ],
)
def test_bad_input_is_shown_next_to_its_field(operator_client, device, data, fields):
    response = operator_client.post(reverse("messaging:compose", args=[device.pk]), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert _errors(body) == fields, body
    assert 'id="compose-form"' in body and "<html" not in body  # just the form, swapped in place
    assert not Message.objects.exists()


def test_a_file_of_the_wrong_type_or_size_is_refused(operator_client, device, monkeypatch):
    url = reverse("messaging:compose", args=[device.pk])
    wrong = SimpleUploadedFile("x.txt", b"hello", "text/plain")
    body = operator_client.post(url, {"kind": "image", "to": "905551112233", "file": wrong}).content.decode()
    assert _errors(body) == {"file"}
    from messaging.views import compose

    monkeypatch.setitem(compose.MEDIA_RULES, "sticker", (10, ("image/webp",)))
    big = SimpleUploadedFile("s.webp", b"RIFF" + b"\0" * 50, "image/webp")
    body = operator_client.post(url, {"kind": "sticker", "to": "905551112233", "file": big}).content.decode()
    assert _errors(body) == {"file"} and "too large" in body
    assert not Message.objects.exists()


def test_a_text_to_an_offline_number_is_queued_not_lost(operator_client, device):
    response = operator_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "text", "to": "+90 555 111 22 33", "text": "later is fine", "is_forwarded": "on"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert 'data-status="queued"' in body
    message = Message.objects.get()
    assert message.status == "queued" and message.is_forwarded and message.chat.jid == "905551112233@s.whatsapp.net"
