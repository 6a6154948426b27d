"""The simulated phone's "hide / share its number" for a contact: how a team tries WhatsApp's hidden user IDs."""

from html import unescape

import pytest
from django.urls import reverse

from messaging.models import SandboxAccount


@pytest.fixture
def sandbox_on(settings):
    from messaging.whatsapp import sandbox

    settings.WA_BACKEND = "sandbox"
    return sandbox


def test_an_operator_hides_and_shares_a_contacts_number(operator_client, device, sandbox_on):
    contact = sandbox_on.peer_phones()[0]
    panel = operator_client.get(reverse("messaging:sandbox")).content.decode()
    assert 'id="sandbox-hide-number"' in panel
    url = reverse("messaging:sandbox_number", args=[device.pk])
    page = unescape(
        operator_client.post(url, {"from_phone": contact, "hidden": "1"}, follow=True).content.decode()
    )
    assert "The contact now writes by hidden ID (LID) only." in page
    account = SandboxAccount.objects.get(phone=contact)
    assert account.lid and not account.shares_phone
    operator_client.post(url, {"from_phone": contact, "hidden": "0"})
    account.refresh_from_db()
    assert account.shares_phone


def test_hiding_a_number_refuses_viewers_other_tenants_and_their_numbers(
    viewer_client, owner_client, device, other_device, sandbox_on
):
    contact = sandbox_on.peer_phones()[0]
    url = reverse("messaging:sandbox_number", args=[device.pk])
    assert viewer_client.post(url, {"from_phone": contact, "hidden": "1"}).status_code == 403
    theirs_url = reverse("messaging:sandbox_number", args=[other_device.pk])
    assert owner_client.post(theirs_url, {"from_phone": contact, "hidden": "1"}).status_code == 404
    theirs = sandbox_on.store_session(device_id=other_device.pk, phone=other_device.phone)["phone"]
    page = unescape(
        owner_client.post(url, {"from_phone": theirs, "hidden": "1"}, follow=True).content.decode()
    )
    assert f"Contact: +{theirs} is another organization's number" in page
    assert not SandboxAccount.objects.filter(shares_phone=False).exists()
