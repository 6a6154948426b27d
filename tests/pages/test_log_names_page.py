"""The webhook delivery log and the audit log name people and groups (name and formatted number), never by raw
JID, with the names of a whole page looked up at once."""

from django.urls import reverse

from accounts.services import record_audit
from messaging.models import Contact, WebhookDelivery, WebhookEndpoint
from messaging.webhooks import envelope
from tests.pages.conftest import make_chat

AYSE = "905551230001@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


def _named(org, device):
    Contact.objects.create(organization=org, device=device, jid=AYSE, push_name="Ayşe")
    make_chat(device, jid=GROUP, name="Kitchen team")


def _delivery(endpoint, device, event, payload):
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        organization=endpoint.organization,
        device=device,
        event=event,
        body=envelope(event=event, device_id=device.pk, payload=payload),
    )


def _endpoint(org):
    return WebhookEndpoint.objects.create(
        organization=org, url="https://example.com/hook", events=["message"]
    )


def test_the_delivery_log_names_the_chat_and_the_sender(admin_client, org, device):
    _named(org, device)
    endpoint = _endpoint(org)
    _delivery(endpoint, device, "message", {"chat_id": AYSE, "from": AYSE, "text": "hi"})
    in_group = _delivery(endpoint, device, "message.reaction", {"chat_id": GROUP, "from": AYSE})
    unknown = _delivery(endpoint, device, "message", {"chat_id": "905559990000@s.whatsapp.net"})
    page = admin_client.get(reverse("webhooks:detail", args=[endpoint.pk])).content.decode()
    log = page[page.index('id="delivery-log"') :]
    assert "Ayşe" in log and "+90 555 123 00 01" in log and "Kitchen team" in log
    assert "+90 555 999 00 00" in log
    assert "@s.whatsapp.net" not in log and "@g.us" not in log
    assert "Reaction" in log  # the event in words, its code beside it
    for delivery in (in_group, unknown):
        detail = admin_client.get(
            reverse("webhooks:delivery", args=[endpoint.pk, delivery.pk])
        ).content.decode()
        about = detail[
            detail.index('class="delivery-about"') : detail.index("</dd>", detail.index("delivery-about"))
        ]
        assert "@" not in about
    assert (
        "Kitchen team"
        in admin_client.get(reverse("webhooks:delivery", args=[endpoint.pk, in_group.pk])).content.decode()
    )


def test_the_delivery_log_looks_names_up_once_per_page(
    admin_client, org, device, django_assert_max_num_queries
):
    endpoint = _endpoint(org)
    _delivery(endpoint, device, "message", {"chat_id": AYSE, "from": AYSE})
    url = reverse("webhooks:detail", args=[endpoint.pk])
    admin_client.get(url)
    with django_assert_max_num_queries(40) as first:
        admin_client.get(url)
    for i in range(20):
        jid = f"90555777{i:04d}@s.whatsapp.net"
        _delivery(endpoint, device, "message", {"chat_id": jid, "from": jid})
    with django_assert_max_num_queries(len(first.captured_queries)):
        admin_client.get(url)


def test_another_organizations_delivery_log_is_not_found(outsider_client, org):
    endpoint = _endpoint(org)
    assert outsider_client.get(reverse("webhooks:detail", args=[endpoint.pk])).status_code == 404


def test_the_audit_log_names_people_and_groups(admin_client, org, device, django_assert_max_num_queries):
    _named(org, device)
    record_audit(organization=org, action="message.queue", details={"to": AYSE, "kind": "text"})
    record_audit(
        organization=org,
        action="group.participants.add",
        object_type="groups.group",
        object_id=GROUP,
        object_repr=GROUP,
        details={"participants": [AYSE, "905559990000@s.whatsapp.net"]},
    )
    url = reverse("accounts:audit_log")
    page = admin_client.get(url).content.decode()
    table = page[page.index('id="audit-events"') :]
    assert "Ayşe (+90 555 123 00 01)" in table and "Kitchen team" in table and "+90 555 999 00 00" in table
    assert "@s.whatsapp.net" not in table and "@g.us" not in table

    with django_assert_max_num_queries(30) as first:
        admin_client.get(url)
    for i in range(20):
        record_audit(
            organization=org, action="message.queue", details={"to": f"90555888{i:04d}@s.whatsapp.net"}
        )
    with django_assert_max_num_queries(len(first.captured_queries)):
        admin_client.get(url)
