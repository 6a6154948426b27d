"""Words the walkthrough tripped over: plurals in the admin ("Webhook deliverys"), Turkish included, and a
refused file named by its kind in the page's language (not "a image", not the raw kind)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from accounts.models import ApiKey, User
from messaging.models import SandboxDelivery, SandboxMedia, WebhookDelivery
from tests.conftest import client_for


@pytest.fixture
def staff_client(db):
    return client_for(User.objects.create_superuser(email="staff@example.com", password="staff pass 123"))


@translation.override("en")
def test_model_names_have_their_plurals():
    assert str(WebhookDelivery._meta.verbose_name_plural) == "webhook deliveries"
    assert str(SandboxDelivery._meta.verbose_name_plural) == "sandbox deliveries"
    assert str(SandboxMedia._meta.verbose_name_plural) == "sandbox media files"
    assert str(ApiKey._meta.verbose_name_plural) == "API keys"


@pytest.mark.parametrize(
    ("language", "shown", "absent"),
    [
        ("en", ["Webhook deliveries", "API keys", "Numbers", "Session workers"], ["eliverys", "Api keys"]),
        (
            "tr",
            ["Webhook teslimatları", "Denetim kayıtları", "Sohbetler"],
            ["eliverys", "Webhook deliveries"],
        ),
    ],
)
def test_the_admin_index_names_models_properly(staff_client, language, shown, absent):
    page = staff_client.get(reverse("admin:index"), headers={"Accept-Language": language}).content.decode()
    for words in shown:
        assert words in page, words
    for words in absent:
        assert words not in page, words


def test_a_disguised_file_is_refused_in_turkish_naming_its_kind(operator_client, device):
    operator_client.post(reverse("set_language"), {"language": "tr"})
    disguised = SimpleUploadedFile("x.png", b"just some text", "image/png")
    body = operator_client.post(
        reverse("messaging:compose", args=[device.pk]),
        {"kind": "image", "to": "905551112233", "file": disguised},
    ).content.decode()
    assert "Bu dosyanın içeriği geçerli bir görsel değil." in body and "bir image" not in body
