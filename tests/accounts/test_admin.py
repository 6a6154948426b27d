"""The Django admin as the staff panel: every organization and number, searchable, secrets never shown."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Invitation, Membership, User
from accounts.services import invite_member, record_audit
from messaging.models import Chat, Contact, Device, DeviceLease, Message, WebhookDelivery, WebhookEndpoint
from messaging.models.device import SessionWorker
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(email="staff@example.com", password="staff pass 123")


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


@pytest.fixture
def device(org):
    d = Device.objects.create(
        organization=org,
        name="Sales phone",
        phone="905551112233",
        jid="905551112233@s.whatsapp.net",
        status="qr_waiting",
        qr_code="2@SECRET-QR-PAYLOAD",
        pair_code="ABCD-EFGH",
    )
    DeviceLease.objects.create(device=d, worker_id="worker-1", expires_at=timezone.now())
    SessionWorker.objects.create(worker_id="worker-1", hostname="host-a", pid=42)
    chat = Chat.objects.create(organization=org, device=d, jid="905550000000@s.whatsapp.net", name="Customer")
    Message.objects.create(organization=org, device=d, chat=chat, wa_id="3EB0ABC", text="hello there")
    Contact.objects.create(organization=org, device=d, jid="905550000000@s.whatsapp.net", name="Customer")
    return d


MODELS = [
    "accounts_user",
    "accounts_organization",
    "accounts_membership",
    "accounts_invitation",
    "accounts_apikey",
    "accounts_auditevent",
    "messaging_device",
    "messaging_devicelease",
    "messaging_sessionworker",
    "messaging_chat",
    "messaging_message",
    "messaging_contact",
    "messaging_webhookendpoint",
    "messaging_webhookdelivery",
]


@pytest.mark.parametrize("model", MODELS)
def test_staff_lists_and_searches_every_model(staff_client, model, owner, api_key, device):
    invite_member(
        organization=owner.memberships.get().organization, email="x@example.com", role="viewer", actor=owner
    )
    url = reverse(f"admin:{model}_changelist")
    assert staff_client.get(url).status_code == 200
    assert staff_client.get(url, {"q": "acme"}).status_code == 200


def test_members_of_organizations_are_not_staff(owner_client):
    response = owner_client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_device_page_hides_qr_and_pair_codes_and_is_read_mostly(staff_client, device, org):
    page = staff_client.get(reverse("admin:messaging_device_change", args=[device.pk])).content.decode()
    assert "Sales phone" in page and "905551112233" in page
    assert "SECRET-QR-PAYLOAD" not in page and "ABCD-EFGH" not in page
    response = staff_client.post(
        reverse("admin:messaging_device_change", args=[device.pk]),
        {"name": "Support phone", "status": "connected"},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.name == "Support phone" and device.status == "qr_waiting"
    assert AuditEvent.objects.get(action="admin.device.change").details == {"fields": ["name"]}
    assert (
        staff_client.post(
            reverse("admin:messaging_device_delete", args=[device.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert Device.objects.filter(pk=device.pk).exists()


def test_messages_are_read_only(staff_client, device):
    msg = Message.objects.get()
    page = staff_client.get(reverse("admin:messaging_message_change", args=[msg.pk])).content.decode()
    assert "hello there" in page and 'name="text"' not in page
    assert (
        staff_client.get(reverse("admin:messaging_message_changelist"), {"q": "hello"})
        .content.decode()
        .count("3EB0ABC")
        >= 1
    )


def test_api_key_hash_is_read_only_and_keys_cannot_be_added(staff_client, api_key):
    key = ApiKey.objects.get()
    page = staff_client.get(reverse("admin:accounts_apikey_change", args=[key.pk])).content.decode()
    assert key.key_hash in page and 'name="key_hash"' not in page
    assert api_key not in page
    assert staff_client.get(reverse("admin:accounts_apikey_add")).status_code == 403


def test_invitation_token_is_never_shown(staff_client, owner, org):
    invitation = invite_member(organization=org, email="x@example.com", role="viewer", actor=owner)
    page = staff_client.get(
        reverse("admin:accounts_invitation_change", args=[invitation.pk])
    ).content.decode()
    assert "x@example.com" in page and invitation.token not in page
    assert (
        invitation.token
        not in staff_client.get(reverse("admin:accounts_invitation_changelist")).content.decode()
    )
    assert Invitation.objects.count() == 1


def test_audit_log_cannot_be_changed_or_deleted(staff_client, org):
    event = record_audit(organization=org, action="device.create", object_repr="x")
    assert staff_client.get(reverse("admin:accounts_auditevent_change", args=[event.pk])).status_code == 200
    staff_client.post(reverse("admin:accounts_auditevent_change", args=[event.pk]), {"action": "forged"})
    assert (
        staff_client.post(
            reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.action == "device.create"


def test_staff_role_change_is_audited(staff_client, owner, viewer, org):
    m = Membership.objects.get(user=viewer)
    response = staff_client.post(
        reverse("admin:accounts_membership_change", args=[m.pk]),
        {"user": viewer.pk, "organization": org.pk, "role": "operator"},
    )
    assert response.status_code == 302
    m.refresh_from_db()
    assert m.role == "operator"
    event = AuditEvent.objects.get(action="admin.membership.change")
    assert event.organization == org and event.details == {"fields": ["role"]}


def test_staff_revokes_keys_with_the_action_and_it_is_audited(staff_client, org, api_key):
    key = ApiKey.objects.get()
    response = staff_client.post(
        reverse("admin:accounts_apikey_changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(action="admin.apikey.revoke")
    assert event.organization == org
    # and it cannot be un-revoked from the change form
    staff_client.post(
        reverse("admin:accounts_apikey_change", args=[key.pk]),
        {"name": "x", "access": "full", "revoked_at_0": "", "revoked_at_1": ""},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_webhook_secret_is_never_shown_and_deliveries_are_read_only(staff_client, org):
    endpoint = WebhookEndpoint.objects.create(
        organization=org, url="https://hooks.example.com/in", events=["message"]
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, organization=org, event="message", body="{}")
    page = staff_client.get(
        reverse("admin:messaging_webhookendpoint_change", args=[endpoint.pk])
    ).content.decode()
    assert "hooks.example.com" in page and endpoint.secret not in page
    listing = staff_client.get(
        reverse("admin:messaging_webhookendpoint_changelist"), {"q": "hooks"}
    ).content.decode()
    assert "hooks.example.com" in listing and endpoint.secret not in listing
    page = staff_client.get(
        reverse("admin:messaging_webhookdelivery_change", args=[delivery.pk])
    ).content.decode()
    assert "message" in page and 'name="body"' not in page
    assert (
        staff_client.post(
            reverse("admin:messaging_webhookendpoint_delete", args=[endpoint.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
