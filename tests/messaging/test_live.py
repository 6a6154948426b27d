"""The live WebSocket: linking seen end to end in the browser's socket, tenancy, and frame validation."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from messaging.services import devices
from messaging.templatetags.dashboard import phone
from waportal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user=None):
    headers = [(b"origin", b"http://localhost")]
    if user is not None:
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


def _open(wa, user, path="/ws/live/"):
    """A connected WebSocket test client on the runtime loop (where the in-memory channel layer lives)."""

    headers = _headers(user)

    async def connect():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return communicator

    return wa.run(connect())


def _receive(wa, communicator, timeout=10):
    return wa.run(communicator.receive_from(timeout=timeout), timeout=timeout + 5)


def _closed_with(wa, communicator) -> int:
    message = wa.run(communicator.receive_output(timeout=10))
    assert message["type"] == "websocket.close"
    return message["code"]


def test_linking_by_qr_reaches_the_socket_live_then_connected(wa, org, owner):
    device = devices.create_device(organization=org, name="Front desk", actor=owner)
    socket = _open(wa, owner, f"/ws/live/?device={device.pk}")

    device = devices.start_linking(organization=org, device=device, actor=owner)
    assert device.status == "qr_waiting" and device.qr_code
    html = _receive(wa, socket)
    assert f'id="device-{device.pk}-link"' in html and "hx-swap-oob" in html
    assert f'data-qr="{escape(device.qr_code)}"' in html  # the QR the phone scans, rendered live

    wa.sandbox.phone_scan(qr_code=device.qr_code)
    wa.wait_event("device.connected", device=device)
    device.refresh_from_db()
    # Every push after the scan arrives; the one for "connected" names the linked number.
    while True:
        html = _receive(wa, socket)
        if "data-connected" in html:
            break
    assert phone(device.phone) in html  # as the page writes it: +1 999-000-0001
    assert device.is_connected
    wa.run(socket.disconnect())


def test_an_event_reaches_a_socket_in_both_groups_once(wa, org, owner):
    device = wa.linked_device(org)
    socket = _open(wa, owner, f"/ws/live/?device={device.pk}")
    devices.reconnect_device(organization=org, device=device, actor=owner)
    wa.wait_event("device.connected", device=device)

    # disconnected (reconnecting) and connected: one frame each although the socket is in two groups
    # (each renders the device as it is when rendered, so both may well show it connected)
    # The history import that linking started may report on the socket meanwhile; only status frames count.
    # Both are awaited (each with the deadline of _receive: a busy machine may render the second late), then
    # any duplicate, which would have been sent with them.
    def status(frame):
        return f'id="device-{device.pk}-status"' in frame

    frames = []
    while len([f for f in frames if status(f)]) < 2:
        frames.append(_receive(wa, socket))
    while not wa.run(socket.receive_nothing(timeout=0.5)):
        frames.append(_receive(wa, socket))
    frames = [f for f in frames if status(f)]
    assert len(frames) == 2
    assert "data-connected" in frames[-1]
    wa.run(socket.disconnect())


def test_anonymous_is_closed_with_4401(wa):
    socket = _open(wa, None)
    assert _closed_with(wa, socket) == 4401


def test_another_organizations_device_is_closed_with_4404(wa, org, other_org, owner):
    theirs = devices.create_device(organization=other_org, name="Theirs")
    socket = _open(wa, owner, f"/ws/live/?device={theirs.pk}")
    assert _closed_with(wa, socket) == 4404
    for bad in ("not-a-number", "9" * 40, ""):
        socket = _open(wa, owner, f"/ws/live/?device={bad}")
        assert _closed_with(wa, socket) == 4404


def test_a_member_of_another_organization_gets_none_of_its_events(wa, org, owner, outsider):
    socket = _open(wa, outsider)
    device = devices.create_device(organization=org, name="Ours", actor=owner)
    devices.start_linking(organization=org, device=device, actor=owner)
    wa.wait_event("device.qr", device=device)
    assert wa.run(socket.receive_nothing(timeout=0.5))
    wa.run(socket.disconnect())


def test_frames_from_the_browser_are_validated_and_never_crash(wa, org, owner):
    socket = _open(wa, owner)

    def say(**frame):
        if "bytes_data" in frame:
            wa.run(socket.send_to(bytes_data=frame["bytes_data"]))
        else:
            wa.run(socket.send_to(text_data=frame["text"]))
        return json.loads(_receive(wa, socket))

    assert say(text=json.dumps({"action": "ping"})) == {"action": "pong"}
    assert say(text="not json")["error"]["field"] == "message"
    assert say(text="[1, 2]")["error"]["field"] == "message"
    assert say(text=json.dumps({"action": "drop tables"}))["error"]["field"] == "action"
    assert say(text=json.dumps({"nothing": 1}))["error"]["field"] == "action"
    assert say(bytes_data=b"\x00\x01")["error"]["field"] == "message"
    assert say(text="x" * 10000)["error"]["field"] == "message"
    assert say(text=json.dumps({"action": "ping"})) == {"action": "pong"}  # still open
    wa.run(socket.disconnect())


def _session_client(user) -> Client:
    """A browser signed in as `user`: a session of its own."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _open_as(wa, client, path="/ws/live/"):
    """A live socket of the browser `client` (its session cookie)."""
    headers = [
        (b"origin", b"http://localhost"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]

    async def connect():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        return communicator

    return wa.run(connect())


def _still_live(wa, socket, org):
    """The socket still gets the organization's events (a number added shows up on it)."""
    device = devices.create_device(organization=org, name="Still live?")
    html = _receive(wa, socket)
    assert f'id="device-{device.pk}-' in html
    device.delete()


def test_a_logout_closes_that_sessions_sockets_and_only_those(wa, org, owner):
    """Signing out in one browser ends its live sockets at once; the same person's other browser keeps its own."""
    desk = devices.create_device(organization=org, name="Desk", actor=owner)
    browser, laptop = _session_client(owner), _session_client(owner)
    first, second = _open_as(wa, browser), _open_as(wa, browser, f"/ws/live/?device={desk.pk}")
    elsewhere = _open_as(wa, laptop)

    assert browser.post(reverse("accounts:logout")).status_code == 302
    assert _closed_with(wa, first) == 4401
    assert _closed_with(wa, second) == 4401
    _still_live(wa, elsewhere, org)
    wa.run(elsewhere.disconnect())


def test_a_member_removed_loses_every_socket_in_that_organization(wa, org, owner, operator, other_org):
    """Removal ends the member's sockets of that organization in every session, not theirs in another one."""
    from accounts import services
    from accounts.models import Membership
    from accounts.tenancy import SESSION_KEY
    from tests.conftest import add_member

    add_member(other_org, "operator", user=operator)
    phone, desk = _session_client(operator), _session_client(operator)
    there = _session_client(operator)
    session = there.session
    session[SESSION_KEY] = other_org.pk
    session.save()
    sockets = [_open_as(wa, phone), _open_as(wa, desk)]
    in_other_org = _open_as(wa, there)

    services.remove_member(
        organization=org, membership=Membership.objects.get(organization=org, user=operator), actor=owner
    )
    assert [_closed_with(wa, socket) for socket in sockets] == [4403, 4403]
    _still_live(wa, in_other_org, other_org)
    wa.run(in_other_org.disconnect())


def test_leaving_from_the_organization_page_closes_the_sockets(wa, org, owner, operator):
    from accounts.models import Membership

    browser = _session_client(operator)
    socket = _open_as(wa, browser)
    membership = Membership.objects.get(organization=org, user=operator)
    response = browser.post(reverse("accounts:member_remove", args=[membership.pk]))
    assert response.status_code == 302
    assert _closed_with(wa, socket) == 4403


@pytest.fixture
def layer_down(monkeypatch):
    """Redis away: every group message for closing sockets is lost (events still flow, as after the blip)."""
    from messaging import live

    class Refusing:
        async def group_send(self, group, message):
            raise ConnectionError("redis is away")

    monkeypatch.setattr(live, "get_channel_layer", lambda: Refusing())


def test_with_the_channel_layer_down_a_logout_succeeds_and_the_socket_closes_at_its_check(
    wa, org, owner, layer_down, monkeypatch, caplog
):
    from messaging import consumers

    monkeypatch.setattr(consumers, "AUTH_RECHECK_SECONDS", 0.2)
    browser = _session_client(owner)
    socket = _open_as(wa, browser)
    assert browser.post(reverse("accounts:logout")).status_code == 302
    assert browser.get(reverse("messaging:devices")).status_code == 302  # signed out all the same
    assert "could not tell the live sockets" in caplog.text
    assert _closed_with(wa, socket) == 4401


def test_with_the_channel_layer_down_a_removed_member_is_closed_at_the_next_check(
    wa, org, owner, operator, layer_down, monkeypatch
):
    from accounts import services
    from accounts.models import Membership
    from messaging import consumers

    monkeypatch.setattr(consumers, "AUTH_RECHECK_SECONDS", 0.2)
    socket = _open_as(wa, _session_client(operator))
    services.remove_member(
        organization=org, membership=Membership.objects.get(organization=org, user=operator), actor=owner
    )
    assert _closed_with(wa, socket) == 4403


def test_a_password_change_closes_the_other_sessions_sockets(wa, org, owner):
    """The browser that changed the password stays signed in; a session elsewhere ends, and its socket with it."""
    browser, stolen = _session_client(owner), _session_client(owner)
    socket = _open_as(wa, stolen)
    response = browser.post(
        reverse("accounts:password_change"),
        {
            "old_password": "correct horse battery",
            "new_password1": "a brand new secret 42",
            "new_password2": "a brand new secret 42",
        },
    )
    assert response.status_code == 302
    assert _closed_with(wa, socket) == 4401
    assert browser.get(reverse("messaging:devices")).status_code == 200


def test_a_user_in_no_organization_is_closed_with_4403(wa):
    from tests.conftest import make_user

    socket = _open(wa, make_user())
    assert _closed_with(wa, socket) == 4403


def test_a_number_whose_worker_died_turns_disconnected_on_open_pages(runtime_harness, org, owner, outsider):
    """No worker is left to take the number over, so nobody else would say it: the periodic announcement does,
    to this organization's pages only, once per lapse."""
    from datetime import timedelta

    from django.utils import timezone

    from messaging.models import Device, DeviceLease

    device = Device.objects.create(
        organization=org, name="Desk", status="connected", jid="905550001111@s.whatsapp.net"
    )
    lease = DeviceLease.objects.create(
        device=device, worker_id="died", expires_at=timezone.now() + timedelta(minutes=1)
    )
    ours, theirs = _open(runtime_harness, owner), _open(runtime_harness, outsider)
    assert devices.announce_unheld() == 0  # still held

    lease.expires_at = timezone.now() - timedelta(seconds=1)  # the worker died and its hold ran out
    lease.save()
    assert devices.announce_unheld() == 1
    html = _receive(runtime_harness, ours)
    assert (
        f'id="device-{device.pk}-status"' in html
        and 'data-status="disconnected"' in html
        and "data-unheld" in html
    )
    assert "no session worker holds this number (since" in html
    assert runtime_harness.run(theirs.receive_nothing(timeout=0.5))

    lease.expires_at = timezone.now() - timedelta(hours=1)  # long since said
    lease.save()
    assert devices.announce_unheld() == 0
    runtime_harness.run(ours.disconnect())
    runtime_harness.run(theirs.disconnect())
