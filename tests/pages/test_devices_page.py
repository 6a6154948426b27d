"""The numbers pages: list and detail render for every role, other tenants get 404, viewers cannot act."""

import pytest
from django.urls import reverse

from messaging.models import Device
from tests.pages.conftest import make_device

ROLES = ["owner_client", "operator_client", "viewer_client"]


@pytest.mark.parametrize("who", ROLES)
def test_device_list_renders_for_each_role(request, who, device):
    client = request.getfixturevalue(who)
    response = client.get(reverse("messaging:devices"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Support" in body
    assert f'id="device-{device.pk}-status"' in body
    assert 'ws-connect="/ws/live/"' in body
    # Only those who may act see the form that adds a number.
    assert ("Add and link" in body) == (who != "viewer_client")


def test_list_shows_only_this_organizations_numbers(owner_client, device, other_device):
    body = owner_client.get(reverse("messaging:devices")).content.decode()
    assert "Support" in body and "Theirs" not in body


@pytest.mark.parametrize("who", ROLES)
def test_device_detail_renders_for_each_role(request, who, device):
    client = request.getfixturevalue(who)
    response = client.get(reverse("messaging:device", args=[device.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert f'ws-connect="/ws/live/?device={device.pk}"' in body
    assert f'id="device-{device.pk}-link"' in body
    assert ("Rename" in body) == (who != "viewer_client")


def test_signed_out_visitor_goes_to_login(client, device):
    response = client.get(reverse("messaging:device", args=[device.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize(
    "name",
    [
        "device",
        "device_fragment",
        "device_link",
        "device_pair",
        "device_reconnect",
        "device_logout",
        "device_rename",
        "device_remove",
    ],
)
def test_another_organizations_device_is_404(owner_client, other_device, name):
    url = reverse(f"messaging:{name}", args=[other_device.pk])
    response = (
        owner_client.post(url, {"name": "x", "phone": "905551112233"})
        if name not in ("device", "device_fragment")
        else owner_client.get(url)
    )
    assert response.status_code == 404
    other_device.refresh_from_db()
    assert other_device.name == "Theirs"


@pytest.mark.parametrize(
    "name",
    ["device_link", "device_pair", "device_reconnect", "device_logout", "device_rename", "device_remove"],
)
def test_viewer_cannot_act_on_a_device(viewer_client, device, name):
    response = viewer_client.post(
        reverse(f"messaging:{name}", args=[device.pk]), {"name": "Renamed", "phone": "905551112233"}
    )
    assert response.status_code == 403
    device.refresh_from_db()
    assert device.name == "Support" and device.status == "connected"
    assert Device.objects.filter(pk=device.pk).exists()


@pytest.mark.parametrize("who", ["viewer_client", "operator_client"])
@pytest.mark.parametrize("name", ["device_logout", "device_remove"])
def test_only_owners_and_admins_log_out_or_remove_a_number(request, who, name, device):
    """Logging out unlinks the phone; removing deletes everything stored for the number: not an operator's call."""
    response = request.getfixturevalue(who).post(reverse(f"messaging:{name}", args=[device.pk]))
    assert response.status_code == 403
    assert "Only owners and admins may" in response.content.decode()
    device.refresh_from_db()
    assert device.status == "connected"


@pytest.mark.parametrize("who", ["viewer_client", "operator_client"])
def test_operators_and_viewers_are_not_offered_log_out_or_remove(request, who, device):
    body = request.getfixturevalue(who).get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert reverse("messaging:device_logout", args=[device.pk]) not in body
    assert reverse("messaging:device_remove", args=[device.pk]) not in body


def test_the_remove_confirmation_says_what_goes(admin_client, device, django_capture_on_commit_callbacks):
    import os

    from django.core.files.base import ContentFile

    from tests.pages.conftest import make_chat, make_message

    chats = [make_chat(device), make_chat(device)]
    for n in range(3):
        make_message(chats[n % 2], text=f"m{n}")
    with_media = make_message(chats[0], text="photo", media_size=2048)
    with_media.media.save("photo.jpg", ContentFile(b"x" * 2048))
    body = admin_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert reverse("messaging:device_remove", args=[device.pk]) in body
    assert "data-chats>2<" in body and "data-messages>4<" in body and "data-media>1<" in body
    assert "2.0\xa0KB" in body or "2.0 KB" in body
    assert "This cannot be undone." in body

    path = with_media.media.path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("messaging:device_remove", args=[device.pk]))
    assert response.status_code == 302
    assert not Device.objects.filter(pk=device.pk).exists()
    assert not os.path.exists(path)  # its media files go with it


def test_removal_is_in_the_audit_log_with_what_went(owner_client, owner, org, device):
    from tests.pages.conftest import make_chat, make_message

    make_message(make_chat(device))
    owner_client.post(reverse("messaging:device_remove", args=[device.pk]))
    event = org.audit_events.get(action="device.remove")
    assert event.actor == owner and event.details["chats"] == 1 and event.details["messages"] == 1


def test_viewer_cannot_add_a_number(viewer_client, org):
    response = viewer_client.post(reverse("messaging:device_create"), {"name": "Sneaky"})
    assert response.status_code == 403
    assert not org.devices.filter(name="Sneaky").exists()


def test_adding_a_number_needs_a_name(operator_client, org):
    response = operator_client.post(reverse("messaging:device_create"), {"name": ""})
    assert response.status_code == 200
    assert "field-error" in response.content.decode()
    assert not org.devices.exists()


def test_qr_waiting_device_shows_the_qr_with_its_countdown(owner_client, org):
    from datetime import timedelta

    from django.utils import timezone

    device = make_device(org, status="qr_waiting")
    Device.objects.filter(pk=device.pk).update(
        qr_code="2@sandbox-qr-code", qr_expires_at=timezone.now() + timedelta(seconds=20)
    )
    body = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert 'data-qr="2@sandbox-qr-code"' in body and "<svg" in body and "qr-countdown" in body


def test_pair_code_form_refuses_a_bad_phone_next_to_the_field(operator_client, org):
    device = make_device(org)
    response = operator_client.post(
        reverse("messaging:device_pair", args=[device.pk]), {"phone": "abc"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "field-error" in body and f'id="device-{device.pk}-link"' in body


def test_list_page_query_count_does_not_grow_with_devices(owner_client, org, django_assert_max_num_queries):
    for i in range(15):
        make_device(org, name=f"Phone {i}", status="connected")
    with django_assert_max_num_queries(12):
        assert owner_client.get(reverse("messaging:devices")).status_code == 200


def test_after_a_reconnect_the_page_refetches_its_live_part(viewer_client, device):
    """The page re-renders its status and link panel when the socket comes back (nothing missed is lost)."""
    page = viewer_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    fragment_url = reverse("messaging:device_fragment", args=[device.pk])
    assert f'hx-get="{fragment_url}"' in page and "data-refresh-on-reconnect" in page
    body = viewer_client.get(fragment_url, HTTP_HX_REQUEST="true").content.decode()
    assert f'id="device-{device.pk}-link"' in body
    assert f'id="device-{device.pk}-status"' in body and 'hx-swap-oob="true"' in body
    assert "<html" not in body


def test_pages_speak_turkish(owner_client, device):
    from tests.pages.conftest import make_chat

    body = owner_client.get(reverse("messaging:devices"), HTTP_ACCEPT_LANGUAGE="tr").content.decode()
    assert "Numaralar" in body and "Ekle ve bağla" in body
    chat = make_chat(device)
    body = owner_client.get(
        reverse("messaging:conversation", args=[device.pk, chat.pk]), HTTP_ACCEPT_LANGUAGE="tr"
    ).content.decode()
    assert "Bir mesaj yazın" in body


def _lease(device, *, seconds: int, worker="worker-a"):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.models import DeviceLease

    return DeviceLease.objects.create(
        device=device, worker_id=worker, expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def _status_badge(body: str, device) -> str:
    start = body.index(f'id="device-{device.pk}-status"')
    return body[start : body.index("</span>", start)]


@pytest.mark.parametrize("who", ROLES)
def test_a_connected_number_whose_worker_is_gone_shows_disconnected(request, who, device):
    """Stored as connected, but the lease ran out: nothing drives the number, so no page says "connected"."""
    lease = _lease(device, seconds=-90)
    client = request.getfixturevalue(who)
    for url in (
        reverse("messaging:devices"),
        reverse("messaging:device", args=[device.pk]),
        reverse("messaging:inbox", args=[device.pk]),
    ):
        badge = _status_badge(client.get(url).content.decode(), device)
        assert 'data-status="disconnected"' in badge and "data-unheld" in badge, (url, badge)
        assert "Disconnected: no session worker holds this number (since " in badge
        assert lease.expires_at.strftime("%Y") in badge  # the time the last hold ran out
    detail = client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    assert "data-connected" not in detail and 'class="unheld" data-unheld' in detail
    device.refresh_from_db()
    assert device.status == "connected"  # only what is shown changes


def test_a_connected_number_no_worker_ever_held_shows_disconnected(owner_client, device):
    badge = _status_badge(owner_client.get(reverse("messaging:devices")).content.decode(), device)
    assert 'data-status="disconnected"' in badge and "no session worker holds this number" in badge
    assert "(since" not in badge


def test_a_held_connected_number_shows_connected(owner_client, device):
    _lease(device, seconds=30)
    body = owner_client.get(reverse("messaging:device", args=[device.pk])).content.decode()
    badge = _status_badge(body, device)
    assert 'data-status="connected"' in badge and "data-unheld" not in badge
    assert "data-connected" in body


def test_an_unheld_number_is_said_in_turkish(owner_client, device):
    _lease(device, seconds=-90)
    body = owner_client.get(reverse("messaging:devices"), HTTP_ACCEPT_LANGUAGE="tr").content.decode()
    badge = _status_badge(body, device)
    assert (
        "Bağlantı kesildi: bu numarayı hiçbir oturum çalışanı tutmuyor (" in badge
        and "tarihinden beri)" in badge
    ), badge


def test_another_organizations_unheld_number_is_404(owner_client, other_device):
    _lease(other_device, seconds=-90)
    assert owner_client.get(reverse("messaging:device", args=[other_device.pk])).status_code == 404
    assert "Theirs" not in owner_client.get(reverse("messaging:devices")).content.decode()


def test_list_page_query_count_stays_bounded_with_leases(owner_client, org, django_assert_max_num_queries):
    for i in range(15):
        phone = make_device(org, name=f"Phone {i}", status="connected")
        if i % 3:
            _lease(phone, seconds=30 if i % 2 else -30, worker=f"w{i}")
    with django_assert_max_num_queries(12):
        body = owner_client.get(reverse("messaging:devices")).content.decode()
    assert body.count("data-unheld") == 10  # 5 without a lease + 5 expired; 5 held


def test_pairing_while_the_session_workers_cannot_be_reached_says_so_next_to_the_field(operator_client, org):
    from unittest import mock

    from messaging import gateway

    device = make_device(org)
    with mock.patch("messaging.gateway.call", side_effect=gateway.Unavailable()):
        response = operator_client.post(
            reverse("messaging:device_pair", args=[device.pk]),
            {"phone": "905551112233"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200
    assert "The session workers cannot be reached right now" in response.content.decode()


def test_linking_while_the_session_workers_cannot_be_reached_says_so_not_linking_started(
    operator_client, org
):
    from unittest import mock

    device = make_device(org)
    with mock.patch("messaging.gateway.run_sync", side_effect=ConnectionRefusedError("redis is down")):
        response = operator_client.post(
            reverse("messaging:device_link", args=[device.pk]), HTTP_HX_REQUEST="true"
        )
        added = operator_client.post(reverse("messaging:device_create"), {"name": "Second line"}, follow=True)
    body = response.content.decode()
    assert "The session workers cannot be reached right now" in body and "Linking started" not in body
    assert "Number added, but linking did not start: The session workers cannot be reached" in (
        added.content.decode()
    )


def test_a_held_connected_number_is_online_now_with_its_number_formatted_and_no_worker_id(
    owner_client, device
):
    _lease(device, seconds=60, worker="vm:8344:2155c4")
    device.last_seen_at = device.created_at
    device.save(update_fields=["last_seen_at"])
    body = owner_client.get(reverse("messaging:devices")).content.decode()
    meta = body[body.index(f'id="device-{device.pk}-meta"') :].split("</span>")[0]
    assert "online now" in meta and "seen" not in meta
    assert "+90 555 12" in meta  # +90 555 12x xx xx, not +905551200001
    assert "vm:8344:2155c4" not in body


def test_a_status_reason_that_repeats_the_status_is_not_said_twice(owner_client, org):
    from tests.pages.conftest import make_device

    plain = make_device(org, name="Plain", status="logged_out")
    plain.status_reason = "Logged out."
    plain.save(update_fields=["status_reason"])
    banned = make_device(org, name="Banned", status="logged_out")
    banned.status_reason = "the account is banned"
    banned.save(update_fields=["status_reason"])
    body = owner_client.get(reverse("messaging:devices")).content.decode()
    assert "Logged out: Logged out." not in body and ">Logged out</span>" in body
    assert "Logged out: the account is banned" in body
