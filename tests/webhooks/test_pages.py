"""The webhook pages: admins manage endpoints and read the delivery log; others get 403, other tenants 404."""

import pytest
from django.urls import reverse
from django.utils import timezone

from messaging import webhooks
from messaging.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from messaging.webhooks import pages
from tests.conftest import client_for
from tests.webhooks.conftest import make_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(org, allow_private):
    return webhooks.create_endpoint(organization=org, url="http://127.0.0.1:9/hook", events=["message"])


@pytest.fixture
def delivery(endpoint, org):
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        organization=org,
        event="message",
        body='{"event":"message"}',
        status="failed",
        attempts=1,
    )
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, status_code=500, duration_ms=12, response_excerpt="upstream exploded"
    )
    return delivery


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


def test_admin_creates_an_endpoint_and_sees_its_secret(admin_client, org, allow_private):
    device = make_device(org, "Sales")
    page = admin_client.get(reverse("webhooks:create"))
    assert page.status_code == 200 and "Sales" in page.text

    response = admin_client.post(
        reverse("webhooks:create"),
        {
            "url": "http://127.0.0.1:8080/in",
            "events": ["message", "message.receipt"],
            "devices": [device.pk],
            "active": "on",
        },
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302 and response.url == reverse("webhooks:detail", args=[endpoint.pk])
    assert endpoint.organization == org and endpoint.events == ["message", "message.receipt"]
    assert list(endpoint.devices.all()) == [device]
    detail = admin_client.get(response.url)
    assert endpoint.secret in detail.text
    assert org.audit_events.filter(action="webhook.create").exists()
    listing = admin_client.get(reverse("webhooks:list"))
    assert "http://127.0.0.1:8080/in" in listing.text


def test_a_private_url_is_refused_on_the_form(owner_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    response = owner_client.post(
        reverse("webhooks:create"), {"url": "http://192.168.0.10/hook", "events": ["message"]}
    )
    assert response.status_code == 200
    assert "not allowed" in response.text
    assert not WebhookEndpoint.objects.exists()


def test_another_organizations_device_cannot_be_chosen(owner_client, other_org, allow_private):
    theirs = make_device(other_org)
    response = owner_client.post(
        reverse("webhooks:create"),
        {"url": "http://127.0.0.1:9/x", "events": ["message"], "devices": [theirs.pk]},
    )
    assert response.status_code == 200 and not WebhookEndpoint.objects.exists()


def test_admin_edits_rotates_tests_and_deletes(owner_client, endpoint, org):
    url = reverse("webhooks:detail", args=[endpoint.pk])
    response = owner_client.post(
        url, {"url": "http://127.0.0.1:9/other", "events": ["message.sent"], "description": "CRM"}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.active, endpoint.description) == (
        "http://127.0.0.1:9/other",
        ["message.sent"],
        False,
        "CRM",
    )

    old = endpoint.secret
    owner_client.post(reverse("webhooks:rotate_secret", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in owner_client.get(url).text

    response = owner_client.post(reverse("webhooks:test", args=[endpoint.pk]), follow=True)
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event="webhook.test", is_test=True).exists()
    assert "test event" in response.text

    owner_client.post(reverse("webhooks:delete", args=[endpoint.pk]))
    assert not WebhookEndpoint.objects.exists()
    actions = set(org.audit_events.values_list("action", flat=True))
    assert {"webhook.update", "webhook.rotate_secret", "webhook.test", "webhook.delete"} <= actions


def test_delivery_log_shows_attempts_and_redelivers(owner_client, endpoint, delivery):
    log = owner_client.get(reverse("webhooks:detail", args=[endpoint.pk]))
    assert f"delivery-{delivery.pk}" in log.text
    partial = owner_client.get(
        reverse("webhooks:detail", args=[endpoint.pk]) + "?part=log", headers={"HX-Request": "true"}
    )
    assert partial.text.lstrip().startswith('<section id="delivery-log"')
    failed_only = owner_client.get(reverse("webhooks:detail", args=[endpoint.pk]) + "?status=succeeded")
    assert f"delivery-{delivery.pk}" not in failed_only.text

    page = owner_client.get(reverse("webhooks:delivery", args=[endpoint.pk, delivery.pk]))
    assert (
        "HTTP 500" in page.text
        and "upstream exploded" in page.text
        and str(delivery.idempotency_key) in page.text
    )

    response = owner_client.post(reverse("webhooks:redeliver", args=[endpoint.pk, delivery.pk]))
    again = WebhookDelivery.objects.get(redelivery_of=delivery)
    assert response.status_code == 302 and again.status == "pending"
    assert again.idempotency_key == delivery.idempotency_key


def test_a_paused_endpoint_is_announced_and_can_be_resumed(owner_client, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        paused_at=timezone.now(), pause_reason="20 failed attempts in a row", consecutive_failures=20
    )
    listing = owner_client.get(reverse("webhooks:list"))
    assert listing.text.count('id="paused-webhooks"') == 1 and "paused" in listing.text
    # every page of the organization says so, not only the webhook pages
    elsewhere = owner_client.get(reverse("messaging:devices"))
    assert 'id="paused-webhooks"' in elsewhere.text and endpoint.url in elsewhere.text
    detail = owner_client.get(reverse("webhooks:detail", args=[endpoint.pk]))
    assert "20 failed attempts in a row" in detail.text

    owner_client.post(reverse("webhooks:resume", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert not endpoint.is_paused and endpoint.consecutive_failures == 0
    assert 'id="paused-webhooks"' not in owner_client.get(reverse("webhooks:list")).text


def test_managers_see_the_webhooks_link_and_operators_do_not(owner_client, org, operator):
    link = f'href="{reverse("webhooks:list")}"'
    assert link in owner_client.get(reverse("messaging:devices")).text
    assert link not in client_for(operator).get(reverse("messaging:devices")).text


def test_the_paused_notice_context_processor(rf, org, owner, endpoint):
    request = rf.get("/")
    request.organization = org
    assert pages.paused_notice(request) == {"paused_webhooks": []}
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(paused_at=timezone.now())
    assert [e.pk for e in pages.paused_notice(request)["paused_webhooks"]] == [endpoint.pk]


def _all_urls(endpoint, delivery):
    e, d = endpoint.pk, delivery.pk
    return [
        ("get", reverse("webhooks:list")),
        ("get", reverse("webhooks:create")),
        ("post", reverse("webhooks:create")),
        ("get", reverse("webhooks:detail", args=[e])),
        ("post", reverse("webhooks:detail", args=[e])),
        ("post", reverse("webhooks:rotate_secret", args=[e])),
        ("post", reverse("webhooks:test", args=[e])),
        ("post", reverse("webhooks:resume", args=[e])),
        ("post", reverse("webhooks:delete", args=[e])),
        ("get", reverse("webhooks:delivery", args=[e, d])),
        ("post", reverse("webhooks:redeliver", args=[e, d])),
    ]


@pytest.mark.parametrize("role_client", ["operator_client", "viewer_client"])
def test_operators_and_viewers_cannot_manage_webhooks(request, role_client, endpoint, delivery):
    client = request.getfixturevalue(role_client)
    secret = endpoint.secret
    for method, url in _all_urls(endpoint, delivery):
        response = getattr(client, method)(url, {"url": "http://127.0.0.1:9/x", "events": ["message"]})
        assert response.status_code == 403, (method, url)
    endpoint.refresh_from_db()
    assert endpoint.secret == secret and WebhookDelivery.objects.count() == 1


def test_another_organizations_endpoint_is_not_found(outsider_client, endpoint, delivery):
    secret = endpoint.secret
    for method, url in _all_urls(endpoint, delivery)[3:]:
        response = getattr(outsider_client, method)(
            url, {"url": "http://127.0.0.1:9/x", "events": ["message"]}
        )
        assert response.status_code == 404, (method, url)
    endpoint.refresh_from_db()
    assert endpoint.secret == secret and WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    # Their own list does not show ours.
    assert endpoint.url not in outsider_client.get(reverse("webhooks:list")).text


def test_signed_out_visitors_are_sent_to_sign_in(client, endpoint):
    response = client.get(reverse("webhooks:detail", args=[endpoint.pk]))
    assert response.status_code == 302 and reverse("accounts:login") in response.url


def test_a_single_label_host_is_fine_when_private_targets_are_allowed(
    owner_client, allow_private, monkeypatch
):
    """Self-hosted: a receiver named by its service name on the internal network (docker, LAN)."""
    from messaging import safe_fetch

    monkeypatch.setattr(safe_fetch, "resolve", lambda host, port=None: ["10.0.0.5"])
    response = owner_client.post(
        reverse("webhooks:create"), {"url": "http://crm:8080/hooks", "events": ["message"]}
    )
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == "http://crm:8080/hooks"
