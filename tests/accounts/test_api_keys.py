"""API keys: created on the page and shown once, stored hashed, used by the REST API, revoked."""

import base64

import pytest
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from accounts import services
from accounts.models import ApiKey, AuditEvent, hash_api_key
from tests.conftest import make_api_key

pytestmark = pytest.mark.django_db


def create(client, name="CRM", access="full", **headers):
    return client.post(
        reverse("accounts:api_key_create"), {"name": name, "access": access}, headers=headers or None
    )


def test_owner_creates_a_key_shown_once_and_stored_hashed(owner_client, owner, org):
    response = create(owner_client, "CRM", "read")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(organization=org)
    page = response.content.decode()
    raw = page.split('aria-label="New API key"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert raw.startswith("wap_") and len(raw) > 40
    assert key.key_hash == hash_api_key(raw) and raw not in (key.key_hash, key.key_prefix)
    assert key.name == "CRM" and key.access == "read" and key.created_by == owner
    # the page never shows it again
    assert raw not in owner_client.get(reverse("accounts:api_keys")).content.decode()
    assert key.key_prefix in owner_client.get(reverse("accounts:api_keys")).content.decode()
    event = AuditEvent.objects.get(action="api_key.create")
    assert event.actor == owner and event.object_id == str(key.pk)
    assert raw not in str(event.details)


def test_htmx_create_answers_the_keys_partial(owner_client):
    response = create(owner_client, HX_Request="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="keys">') and "<html" not in body
    assert "shown only once" in body


def test_key_needs_a_name_and_a_known_access(owner_client):
    assert create(owner_client, "  ").status_code == 400
    assert create(owner_client, "x", "god").status_code == 400
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("fixture", ["viewer_client", "operator_client"])
def test_viewer_and_operator_neither_see_keys_nor_create_or_revoke(request, fixture, org, owner):
    """Which programs hold keys, who made them, when they last acted: for those who manage keys only."""
    c = request.getfixturevalue(fixture)
    make_api_key(org, created_by=owner)
    key = ApiKey.objects.get()
    response = c.get(reverse("accounts:api_keys"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "Only owners and admins may see" in page and key.key_prefix not in page and key.name not in page
    assert reverse("accounts:api_keys") not in c.get(reverse("accounts:organization")).content.decode()
    assert create(c).status_code == 403
    assert c.post(reverse("accounts:api_key_revoke", args=[key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.is_active and ApiKey.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_admin_sees_the_keys_and_the_menu_link(request, org, owner, admin_user):
    from tests.conftest import client_for

    make_api_key(org, created_by=owner)
    c = client_for(admin_user)
    assert reverse("accounts:api_keys") in c.get(reverse("accounts:organization")).content.decode()
    assert ApiKey.objects.get().key_prefix in c.get(reverse("accounts:api_keys")).content.decode()


def test_keys_page_lists_only_this_organizations_keys(owner_client, api_key, other_api_key, other_org):
    page = owner_client.get(reverse("accounts:api_keys")).content.decode()
    theirs = ApiKey.objects.get(organization=other_org)
    assert theirs.key_prefix not in page


def test_revoke_a_key(owner_client, owner, org, api_key):
    key = ApiKey.objects.get()
    response = owner_client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    assert response.status_code == 200 and "revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert services.authenticate_api_key(api_key) is None
    assert AuditEvent.objects.get(action="api_key.revoke").actor == owner


def test_revoking_another_organizations_key_is_404(owner_client, other_api_key, other_org):
    theirs = ApiKey.objects.get(organization=other_org)
    assert owner_client.post(reverse("accounts:api_key_revoke", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active


def test_anonymous_cannot_revoke(client, api_key):
    key = ApiKey.objects.get()
    response = client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    key.refresh_from_db()
    assert key.is_active


# --- using a key ---------------------------------------------------------------------------------


def test_key_authenticates_in_the_three_ways_clients_send_it(org, api_key):
    rf = RequestFactory()
    basic = base64.b64encode(f"anyone:{api_key}".encode()).decode()
    for headers in (
        {"Authorization": f"Bearer {api_key}"},
        {"X-Api-Key": api_key},
        {"Authorization": f"Basic {basic}"},
    ):
        key = services.api_key_from_request(rf.get("/", headers=headers))
        assert key is not None and key.organization == org
    assert services.api_key_from_request(rf.get("/", headers={"Authorization": "Bearer wap_wrong"})) is None
    assert services.api_key_from_request(rf.get("/", headers={"Authorization": "Basic !!!"})) is None
    assert services.api_key_from_request(rf.get("/")) is None


def test_using_a_key_records_last_used_time(owner_client, api_key):
    key = ApiKey.objects.get()
    assert key.last_used_at is None
    assert services.authenticate_api_key(api_key).pk == key.pk
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert (
        key.last_used_at.strftime("%Y-%m-%d %H:%M")
        in owner_client.get(reverse("accounts:api_keys")).content.decode()
    )


def _api_path(path: str) -> str:
    try:
        resolve(path)
    except (Resolver404, NoReverseMatch):
        pytest.skip(f"the REST API has no {path} yet")
    return path


def test_key_created_on_the_page_works_on_the_rest_api_until_revoked(
    owner_client, org, other_org, other_api_key
):
    path = _api_path("/app/devices")
    response = create(owner_client, "script")
    raw = response.content.decode().split('aria-label="New API key"')[0].rsplit('value="', 1)[1].split('"')[0]
    api = Client()
    answer = api.get(path, headers={"Authorization": f"Bearer {raw}"})
    assert answer.status_code == 200, answer.content
    key = ApiKey.objects.get(organization=org)
    assert key.last_used_at is not None
    owner_client.post(reverse("accounts:api_key_revoke", args=[key.pk]))
    answer = api.get(path, headers={"Authorization": f"Bearer {raw}"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "UNAUTHORIZED"


def test_keys_page_explains_the_three_ways_to_send_a_key(owner_client):
    page = owner_client.get(reverse("accounts:api_keys")).content.decode()
    assert "Authorization: Bearer &lt;key&gt;" in page and "X-Api-Key: &lt;key&gt;" in page
