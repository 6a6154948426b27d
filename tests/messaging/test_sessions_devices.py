"""Device services: tenant-checked, validated (naming the field), audited."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from messaging.models import Device
from messaging.services import devices

pytestmark = pytest.mark.django_db


def test_create_and_rename_are_audited(org, owner):
    device = devices.create_device(organization=org, name="  Sales  ", actor=owner)
    assert device.name == "Sales" and device.organization == org and not device.wanted
    devices.rename_device(organization=org, device=device, name="Support", actor=owner)
    assert Device.objects.get(pk=device.pk).name == "Support"
    actions = list(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    assert "device.create" in actions and "device.rename" in actions


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_a_bad_name_is_refused_naming_the_field(org, name):
    with pytest.raises(ValidationError) as info:
        devices.create_device(organization=org, name=name)
    assert "name" in info.value.message_dict
    assert not Device.objects.exists()


def test_another_organizations_device_is_not_found(org, other_org):
    theirs = devices.create_device(organization=other_org, name="Theirs")
    for call in (
        lambda: devices.rename_device(organization=org, device=theirs, name="Mine now"),
        lambda: devices.start_linking(organization=org, device=theirs, wait=0),
        lambda: devices.pair_device(organization=org, device=theirs, phone="905551112233"),
        lambda: devices.logout_device(organization=org, device=theirs),
        lambda: devices.reconnect_device(organization=org, device=theirs),
        lambda: devices.remove_device(organization=org, device=theirs),
    ):
        with pytest.raises(Device.DoesNotExist):
            call()
    theirs.refresh_from_db()
    assert theirs.name == "Theirs" and not theirs.wanted


def test_a_bad_pairing_phone_is_refused_naming_the_field(org):
    device = devices.create_device(organization=org, name="Phone")
    with pytest.raises(ValidationError) as info:
        devices.pair_device(organization=org, device=device, phone="not a number")
    assert "phone" in info.value.message_dict


def test_reconnect_needs_a_linked_device(org):
    device = devices.create_device(organization=org, name="Phone")
    with pytest.raises(ValidationError) as info:
        devices.reconnect_device(organization=org, device=device)
    assert "device" in info.value.message_dict


def test_remove_deletes_the_device_and_audits(org, owner):
    device = devices.create_device(organization=org, name="Old")
    devices.remove_device(organization=org, device=device, actor=owner)
    assert not Device.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(organization=org, action="device.remove").exists()
