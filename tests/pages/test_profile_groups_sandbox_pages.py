"""Profile, groups and the simulated phone: roles, tenancy and how they behave with the number offline."""

from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import AuditEvent
from messaging.models import Device, SandboxMessage, SandboxSession

ROLES = ["owner_client", "operator_client", "viewer_client"]
GROUP = "120363000000000001@g.us"


@pytest.mark.parametrize("who", ROLES)
def test_profile_renders_for_each_role_and_offline_sections_say_why(request, who, device):
    client = request.getfixturevalue(who)
    page = client.get(reverse("messaging:profile", args=[device.pk]))
    assert page.status_code == 200
    assert ("Change avatar" in page.content.decode()) == (who != "viewer_client")
    section = client.get(reverse("messaging:profile_section", args=[device.pk, "privacy"]))
    assert section.status_code == 200 and "not connected" in section.content.decode()


def test_profile_lookup_refuses_a_bad_number(viewer_client, device):
    body = viewer_client.get(
        reverse("messaging:profile_lookup", args=[device.pk]), {"phone": "hello"}
    ).content.decode()
    assert "field-error" in body


@pytest.mark.parametrize(
    "name", ["profile_avatar", "profile_push_name", "profile_presence", "profile_unfollow"]
)
def test_viewer_cannot_change_the_profile(viewer_client, device, name):
    data = {
        "push_name": "x",
        "presence": "available",
        "newsletter_id": "1@newsletter",
        "avatar": SimpleUploadedFile("a.png", b"\x89PNG", "image/png"),
    }
    assert viewer_client.post(reverse(f"messaging:{name}", args=[device.pk]), data).status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("name", ["profile", "profile_lookup"])
def test_another_organizations_profile_is_404(owner_client, other_device, name):
    assert owner_client.get(reverse(f"messaging:{name}", args=[other_device.pk])).status_code == 404


def test_another_organizations_profile_cannot_be_changed(owner_client, other_device):
    response = owner_client.post(
        reverse("messaging:profile_push_name", args=[other_device.pk]), {"push_name": "x"}
    )
    assert response.status_code == 404
    assert (
        owner_client.get(reverse("messaging:profile_section", args=[other_device.pk, "contacts"])).status_code
        == 404
    )


@pytest.mark.parametrize("who", ROLES)
def test_groups_pages_render_for_each_role(request, who, device):
    client = request.getfixturevalue(who)
    assert client.get(reverse("groups:index")).status_code == 302
    listing = client.get(reverse("groups:list", args=[device.pk]))
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "not connected" in body  # read live from WhatsApp; offline says so
    assert ("Create a group" in body) == (who != "viewer_client")
    detail = client.get(reverse("groups:detail", args=[device.pk, GROUP]))
    assert detail.status_code == 200


@pytest.mark.parametrize(
    "name, extra",
    [
        ("create", []),
        ("join", []),
        ("detail", [GROUP]),
        ("participants", [GROUP]),
        ("requests", [GROUP]),
        ("settings", [GROUP, "name"]),
        ("photo", [GROUP]),
        ("invite", [GROUP]),
        ("leave", [GROUP]),
    ],
)
def test_another_organizations_groups_are_404(owner_client, other_device, name, extra):
    url = reverse(f"groups:{name}", args=[other_device.pk, *extra])
    response = (
        owner_client.get(url)
        if name == "detail"
        else owner_client.post(url, {"name": "x", "participants": "905551112233"})
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "name, extra",
    [
        ("create", []),
        ("join", []),
        ("participants", [GROUP]),
        ("requests", [GROUP]),
        ("settings", [GROUP, "locked"]),
        ("photo", [GROUP]),
        ("invite", [GROUP]),
        ("leave", [GROUP]),
    ],
)
def test_viewer_cannot_change_groups(viewer_client, device, name, extra):
    url = reverse(f"groups:{name}", args=[device.pk, *extra])
    response = viewer_client.post(
        url,
        {
            "name": "x",
            "participants": "905551112233",
            "action": "add",
            "link": "https://chat.whatsapp.com/abcdefgh",
        },
    )
    assert response.status_code == 403
    assert not AuditEvent.objects.exists()


def test_not_a_group_id_is_404(owner_client, device):
    assert (
        owner_client.get(
            reverse("groups:detail", args=[device.pk, "905551112233@s.whatsapp.net"])
        ).status_code
        == 404
    )


def test_creating_a_group_offline_says_why(operator_client, device):
    response = operator_client.post(
        reverse("groups:create", args=[device.pk]), {"name": "G", "participants": "905551112233"}, follow=True
    )
    assert "not connected" in response.content.decode()


def test_the_simulated_phone_exists_only_on_the_sandbox(owner_client, device, settings):
    settings.WA_BACKEND = "neonize"
    assert owner_client.get(reverse("messaging:sandbox")).status_code == 404
    assert owner_client.post(reverse("messaging:sandbox_scan", args=[device.pk])).status_code == 404
    assert "Simulated phone" not in owner_client.get(reverse("messaging:devices")).content.decode()
    settings.WA_BACKEND = "sandbox"
    assert owner_client.get(reverse("messaging:sandbox")).status_code == 200
    assert "Simulated phone" in owner_client.get(reverse("messaging:devices")).content.decode()


def test_the_simulated_phone_refuses_viewers_and_other_tenants(
    viewer_client, owner_client, device, other_device, settings
):
    settings.WA_BACKEND = "sandbox"
    for name in ("sandbox_scan", "sandbox_code", "sandbox_send", "sandbox_label"):
        assert viewer_client.post(reverse(f"messaging:{name}", args=[device.pk])).status_code == 403
        filled = {"phone": "905551112233", "code": "ABCD-EFGH", "from_phone": "905551112233", "text": "x"}
        filled.update(chat="905551112233", label_name="VIP")
        assert (
            owner_client.post(reverse(f"messaging:{name}", args=[other_device.pk]), filled).status_code == 404
        )
    panel = owner_client.get(reverse("messaging:sandbox")).content.decode()
    assert device.name in panel and other_device.name not in panel


def their_number(other_device) -> str:
    """The other organization's device linked on the simulated network, as its own number."""
    from messaging.whatsapp import sandbox

    return sandbox.store_session(device_id=other_device.pk, phone=other_device.phone)["phone"]


def flash(response) -> str:
    return unescape(response.content.decode())


def test_an_operator_cannot_link_a_device_as_another_organizations_number(
    operator_client, device, other_device, settings
):
    settings.WA_BACKEND = "sandbox"
    theirs = their_number(other_device)
    Device.objects.filter(pk=device.pk).update(qr_code="2@sandbox:waiting", pair_code="ABCD-EFGH")
    scan = operator_client.post(
        reverse("messaging:sandbox_scan", args=[device.pk]), {"phone": "+" + theirs}, follow=True
    )
    assert f"Phone scanning the QR: +{theirs} is another organization's number" in flash(scan)
    code = operator_client.post(
        reverse("messaging:sandbox_code", args=[device.pk]),
        {"phone": theirs, "code": "ABCD-EFGH"},
        follow=True,
    )
    assert f"Phone entering the code: +{theirs} is another organization's number" in flash(code)
    assert not SandboxSession.objects.filter(device=device).exists()
    assert other_device.name not in flash(scan) + flash(code)


def test_an_operator_cannot_link_a_device_as_a_simulated_contact_or_a_non_number(
    operator_client, device, settings
):
    from messaging.whatsapp import sandbox

    settings.WA_BACKEND = "sandbox"
    contact = sandbox.peer_phones()[0]
    Device.objects.filter(pk=device.pk).update(qr_code="2@sandbox:waiting")
    url = reverse("messaging:sandbox_scan", args=[device.pk])
    page = flash(operator_client.post(url, {"phone": contact}, follow=True))
    assert f"Phone scanning the QR: +{contact} is a simulated contact's number" in page
    page = flash(operator_client.post(url, {"phone": "hello"}, follow=True))
    assert "Phone scanning the QR: enter a phone number with its country code" in page
    assert not SandboxSession.objects.filter(device=device).exists()


def test_an_operator_cannot_write_as_another_organizations_number(
    operator_client, device, other_device, settings
):
    settings.WA_BACKEND = "sandbox"
    theirs = their_number(other_device)
    response = operator_client.post(
        reverse("messaging:sandbox_send", args=[device.pk]),
        {"from_phone": theirs, "text": "I am them"},
        follow=True,
    )
    assert f"From: +{theirs} is another organization's number; pick a simulated contact." in flash(response)
    assert not SandboxMessage.objects.filter(sender=f"{theirs}@s.whatsapp.net").exists()


def test_a_picture_is_checked_by_its_content_and_size_before_it_goes_to_whatsapp(
    operator_client, device, settings
):
    """The same rule as the API's avatar and group photo: a JPEG, PNG or WebP within the size limit."""
    avatar = reverse("messaging:profile_avatar", args=[device.pk])
    disguised = SimpleUploadedFile("a.png", b"not a picture at all", "image/png")
    page = operator_client.post(avatar, {"avatar": disguised}, follow=True).content.decode()
    assert "Choose a JPEG, PNG or WebP image." in page

    settings.API_MEDIA_MAX_BYTES = {"photo": 10}
    big = SimpleUploadedFile("g.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
    page = operator_client.post(reverse("groups:photo", args=[device.pk, GROUP]), {"photo": big}, follow=True)
    assert "The file is too large: at most 10\xa0bytes for this kind." in page.content.decode()
