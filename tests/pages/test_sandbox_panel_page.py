"""The simulated phone (issue 16): the code it would scan pre-filled and kept current live, its forms appearing
on a number that just connected with no reload, a contact asking to join a group, and "admins approve new
members" turned on from it; tenancy and roles for what is new."""

from html import unescape

import pytest
from django.urls import reverse

from messaging import live
from messaging.models import Device, SandboxGroup
from tests.conftest import add_member, client_for

NEW = ("sandbox_phone", "sandbox_join_request", "sandbox_join_approval")


@pytest.fixture
def sandbox_on(settings):
    settings.WA_BACKEND = "sandbox"


@pytest.mark.django_db
def test_the_phone_shows_the_code_the_number_shows_now(owner_client, org, sandbox_on):
    from tests.pages.conftest import make_device

    waiting = make_device(org, name="Waiting", status="qr_waiting")
    Device.objects.filter(pk=waiting.pk).update(qr_code="2@the-code-shown-now")
    pairing = make_device(org, name="Pairing", status="pairing")
    Device.objects.filter(pk=pairing.pk).update(pair_code="WXYZ-1234")
    panel = owner_client.get(reverse("messaging:sandbox")).content.decode()
    assert f'id="sandbox-qr-{waiting.pk}" value="2@the-code-shown-now"' in panel
    assert f'id="sandbox-code-{pairing.pk}" value="WXYZ-1234"' in panel
    assert 'ws-connect="/ws/live/"' in panel and "live-oob" in panel  # kept current live
    # The number's own page holds the same phone, pre-filled the same way.
    page = owner_client.get(reverse("messaging:device", args=[waiting.pk])).content.decode()
    assert f'id="sandbox-qr-{waiting.pk}" value="2@the-code-shown-now"' in page


@pytest.mark.django_db
def test_a_new_code_is_pushed_into_the_field(org, sandbox_on):
    from tests.pages.conftest import make_device

    device = make_device(org, status="qr_waiting")
    Device.objects.filter(pk=device.pk).update(qr_code="2@rotated-in")
    device.refresh_from_db()
    pushed = "".join(live.render_event(event="device.qr", device=device, data={}))
    assert f'id="sandbox-qr-{device.pk}" value="2@rotated-in" readonly' in pushed
    assert 'hx-swap-oob="true"' in pushed
    assert f"sandbox-phone-{device.pk}-live" not in pushed  # a new code alone does not re-fetch the forms


@pytest.mark.django_db
def test_a_stale_code_is_not_scanned(operator_client, org, sandbox_on):
    from tests.pages.conftest import make_device

    device = make_device(org, status="qr_waiting")
    Device.objects.filter(pk=device.pk).update(qr_code="2@current")
    response = operator_client.post(
        reverse("messaging:sandbox_scan", args=[device.pk]), {"qr_code": "2@expired"}, follow=True
    )
    assert "The number shows a new QR code now" in unescape(response.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize("name", NEW)
def test_what_is_new_is_404_for_another_organization_and_403_for_a_viewer(
    owner_client, viewer_client, device, other_device, name, sandbox_on
):
    other = reverse(f"messaging:{name}", args=[other_device.pk])
    mine = reverse(f"messaging:{name}", args=[device.pk])
    data = {"group": "120363000000000001@g.us", "from_phone": "905551112233", "approval": "on"}
    if name == "sandbox_phone":
        assert owner_client.get(other).status_code == 404
        assert viewer_client.get(mine).status_code == 403
    else:
        assert owner_client.post(other, data).status_code == 404
        assert viewer_client.post(mine, data).status_code == 403


@pytest.mark.django_db
def test_what_is_new_exists_only_on_the_sandbox(owner_client, device, settings):
    settings.WA_BACKEND = "neonize"
    assert owner_client.get(reverse("messaging:sandbox_phone", args=[device.pk])).status_code == 404
    assert owner_client.post(reverse("messaging:sandbox_join_request", args=[device.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_phone_of_a_number_that_just_connected_is_refetched_with_its_new_forms(wa, org):
    from messaging.services import devices

    op = client_for(add_member(org, "operator"))
    device = devices.create_device(organization=org, name="Fresh")
    device = devices.start_linking(organization=org, device=device)
    panel = op.get(reverse("messaging:sandbox")).content.decode()
    assert f'value="{device.qr_code}"' in panel and "sandbox-peer-send" not in panel

    op.post(reverse("messaging:sandbox_scan", args=[device.pk]), {"qr_code": device.qr_code})
    wa.wait_event("device.connected", device=device, since_start=True)
    device.refresh_from_db()
    pushed = "".join(live.render_event(event="device.connected", device=device, data={}))
    refetch = reverse("messaging:sandbox_phone", args=[device.pk])
    assert (
        f'id="sandbox-phone-{device.pk}-live" hx-swap-oob="true" hx-get="{refetch}" hx-trigger="load"'
        in pushed
    )
    fragment = op.get(
        refetch, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/dashboard/sandbox/"
    ).content.decode()
    assert fragment.startswith(f'<article class="sandbox-phone" id="sandbox-phone-{device.pk}">')
    assert "sandbox-peer-send" in fragment and "csrfmiddlewaretoken" in fragment
    assert (
        'name="next" value="/dashboard/sandbox/"' in fragment
    )  # back to the page it is on, not the fragment


@pytest.mark.django_db(transaction=True)
def test_a_contact_asks_to_join_a_group_that_now_needs_approval(wa, org):
    op = client_for(add_member(org, "operator"))
    device = wa.linked_device(org)
    a, c = wa.peers[0], wa.peers[2]
    created = op.post(
        reverse("groups:create", args=[device.pk]), {"name": "Needs approval", "participants": a}
    )
    group = created["Location"].rstrip("/").split("/")[-1]
    panel = op.get(reverse("messaging:sandbox")).content.decode()
    assert f'data-sandbox-group="{group}"' in panel and "Needs approval" in panel

    response = op.post(
        reverse("messaging:sandbox_join_approval", args=[device.pk]),
        {"group": group, "approval": "on", "next": "/dashboard/sandbox/"},
        follow=True,
    )
    assert "Admins of Needs approval now approve new members." in unescape(response.content.decode())
    assert SandboxGroup.objects.get(jid=group).join_approval
    detail = reverse("groups:detail", args=[device.pk, group])
    assert "data-join-approval" in op.get(detail).content.decode()

    response = op.post(
        reverse("messaging:sandbox_join_request", args=[device.pk]),
        {"group": group, "from_phone": c},
        follow=True,
    )
    assert f"+{c} asked to join Needs approval" in unescape(response.content.decode())
    wa.wait_event("group.join_request", device=device, since_start=True)
    page = op.get(detail).content.decode()
    requests = page[page.index('id="join-requests"') :]
    assert c in requests[: requests.index("</table>")]


@pytest.mark.django_db(transaction=True)
def test_only_this_numbers_groups_can_be_touched(wa, org):
    op = client_for(add_member(org, "operator"))
    device = wa.linked_device(org)
    a, b = wa.peers[0], wa.peers[1]
    elsewhere = wa.sandbox.peer_create_group(owner_phone=a, name="Not ours", participants=[b])
    for name, data in (
        ("sandbox_join_approval", {"group": elsewhere, "approval": "on"}),
        ("sandbox_join_request", {"group": elsewhere, "from_phone": b}),
    ):
        response = op.post(reverse(f"messaging:{name}", args=[device.pk]), data, follow=True)
        assert "Group: pick one of this number's groups." in unescape(response.content.decode())
    assert not SandboxGroup.objects.get(jid=elsewhere).join_approval


def _options(html: str, select_start: str) -> list[str]:
    """The texts of the options of the first <select> whose opening tag begins with `select_start`."""
    import re

    start = html.index(select_start)
    select = html[start : html.index("</select>", start)]
    return [unescape(text) for text in re.findall(r"<option [^>]*>([^<]*)</option>", select)]


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "from_word"), [("en", "From"), ("tr", "Kimden")])
def test_the_phone_names_its_contacts_as_the_other_pages_do(
    owner_client, org, sandbox_on, language, from_word
):
    """ "Zeynep Schmidt (+1 555-776-3170)", not "+15557763170"; a name the team saved for a contact wins; the
    sender select has a label a person sees ("From")."""
    from messaging.models import Contact
    from messaging.templatetags.dashboard import phone
    from messaging.whatsapp import sandbox
    from tests.pages.conftest import make_device

    device = make_device(org, name="Support", status="connected")
    peers = {
        p["phone"]: p["name"]
        for p in sandbox.network_summary()["peers"]
        if p["phone"] in sandbox.peer_phones()
    }
    first, second = list(peers)[:2]
    Contact.objects.create(organization=org, device=device, jid=f"{second}@s.whatsapp.net", name="Saved Name")
    for url in (reverse("messaging:sandbox"), reverse("messaging:device", args=[device.pk])):
        page = owner_client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
        phone_card = page[page.index(f'id="sandbox-phone-{device.pk}"') :]
        sender = _options(phone_card, '<select name="from_phone"')
        assert sender[0] == f"{peers[first]} ({phone(first)})", sender
        assert f"Saved Name ({phone(second)})" in sender
        assert not any(text.startswith("+") and text[1:].isdigit() for text in sender), sender
        for select in (
            '<select name="chat"',
            '<select name="from_phone" aria-label="',
        ):  # label, number, call
            assert _options(phone_card, select)[0] == f"{peers[first]} ({phone(first)})"
        assert (
            f'<label for="sandbox-from-{device.pk}" class="sandbox-from">{from_word}</label>' in phone_card
            and f'<select name="from_phone" id="sandbox-from-{device.pk}">' in phone_card
        )
