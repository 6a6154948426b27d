"""Session workers on the sandbox network: linking, pairing codes, restarts, logouts and incoming messages."""

import pytest

from messaging import gateway
from messaging.models import Device, DeviceLease, Message
from messaging.models.device import SessionWorker
from messaging.services import devices

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_linked_device_is_held_by_the_worker_and_connected(wa, org):
    device = wa.linked_device(org)
    assert device.is_connected and device.jid and device.phone
    lease = DeviceLease.objects.get(device=device)
    assert (lease.worker_id, lease.channel_name) == (wa.worker.worker_id, wa.worker.channel_name)
    assert lease.is_live
    assert SessionWorker.objects.filter(
        worker_id=wa.worker.worker_id, channel_name=wa.worker.channel_name
    ).exists()


def test_linking_by_pairing_code_works_for_the_right_phone_only(wa, org, owner):
    device = devices.create_device(organization=org, name="Paired", actor=owner)
    phone = wa.sandbox.fresh_phone()
    code = devices.pair_device(organization=org, device=device, phone=f"+{phone}", actor=owner)
    data = wa.wait_event("device.pair_code", device=device)
    assert data["pair_code"] == code.code
    with pytest.raises(Exception) as wrong:
        wa.sandbox.phone_enter_code(phone=wa.peers[0], code=code.code)
    assert getattr(wrong.value, "code", "") == "FORBIDDEN"
    wa.sandbox.phone_enter_code(phone=phone, code=code.code)
    connected = wa.wait_event("device.connected", device=device)
    assert connected["phone"] == phone
    device.refresh_from_db()
    assert device.is_connected and device.phone == phone


def test_a_restart_reconnects_every_wanted_device(wa, org, other_org):
    first = wa.linked_device(org, name="One")
    second = wa.linked_device(other_org, name="Two")
    old = wa.worker.worker_id
    wa.restart_worker()
    assert not SessionWorker.objects.filter(worker_id=old).exists()
    for device in (first, second):
        wa.wait_event("device.connected", device=device)
        assert DeviceLease.objects.get(device=device).worker_id == wa.worker.worker_id
    assert Device.objects.filter(status="connected").count() == 2


def test_a_stopped_worker_leaves_its_devices_disconnected_and_free(wa, org):
    device = wa.linked_device(org)
    wa.stop_worker()
    device.refresh_from_db()
    assert device.status == "disconnected" and device.wanted
    assert not DeviceLease.objects.filter(device=device).exists()
    with pytest.raises(Exception) as info:
        gateway.call(device, "contacts")
    assert getattr(info.value, "code", "") == "DEVICE_NOT_CONNECTED"


def test_logout_unlinks_and_releases_the_device(wa, org, owner):
    device = wa.linked_device(org)
    device = devices.logout_device(organization=org, device=device, actor=owner)
    assert device.status == "logged_out" and not device.wanted and not device.jid
    wa.wait_event("device.logged_out", device=device)
    wa.run(wa.worker.settle())
    wa.run(wa.worker.heartbeat())
    wa.run(wa.worker.settle())
    assert not DeviceLease.objects.filter(device=device).exists()
    assert device.pk not in wa.worker.held


def test_unlinking_from_the_phone_logs_the_device_out(wa, org):
    device = wa.linked_device(org)
    wa.sandbox.phone_unlink(device_id=device.pk)
    wa.wait_event("device.logged_out", device=device)
    wa.run(wa.worker.settle())
    wa.run(wa.worker.heartbeat())
    wa.run(wa.worker.settle())
    device.refresh_from_db()
    assert device.status == "logged_out" and not device.wanted
    assert not DeviceLease.objects.filter(device=device).exists()


def test_linking_again_after_a_logout_shows_a_new_qr(wa, org, owner):
    device = wa.linked_device(org)
    devices.logout_device(organization=org, device=device, actor=owner)
    device = devices.start_linking(organization=org, device=device, actor=owner)
    assert device.status == "qr_waiting" and device.qr_code
    wa.sandbox.phone_scan(qr_code=device.qr_code)
    wa.wait_event("device.connected", device=device)


def test_a_peer_message_is_stored_and_published(wa, org):
    device = wa.linked_device(org)
    peer = wa.peers[0]
    wa_id = wa.sandbox.peer_send(from_phone=peer, to_jid=device.jid, text="merhaba")
    data = wa.wait_event("message", device=device, predicate=lambda d: d["id"] == wa_id)
    assert data["text"] == "merhaba" and not data["from_me"]
    stored = Message.objects.get(device=device, wa_id=wa_id)
    assert stored.text == "merhaba" and stored.chat.jid == f"{peer}@s.whatsapp.net"


def test_remove_stops_the_client_and_deletes_the_device(wa, org, owner):
    device = wa.linked_device(org)
    devices.remove_device(organization=org, device=device, actor=owner)
    assert not Device.objects.filter(pk=device.pk).exists()
    wa.run(wa.worker.settle())
    wa.run(wa.worker.heartbeat())
    wa.run(wa.worker.settle())
    assert device.pk not in wa.worker.held


def test_a_lost_nudge_only_delays_the_device_until_the_next_heartbeat(wa, org, owner, monkeypatch):
    device = devices.create_device(organization=org, name="Quiet", actor=owner)
    device = devices.start_linking(organization=org, device=device, actor=owner)
    # The scan's nudge never arrives (the scan pokes through the sandbox's linking module).
    monkeypatch.setattr(wa.sandbox.linking, "_wake_sync", lambda device_ids: None)
    wa.sandbox.phone_scan(qr_code=device.qr_code)
    wa.run(wa.worker.heartbeat())
    wa.wait_event("device.connected", device=device)
