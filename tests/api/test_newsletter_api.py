"""The /newsletter endpoints: the conventions every endpoint keeps, then behaviour on the sandbox."""

import pytest

from accounts.models import AuditEvent
from tests.api import checks
from tests.api.conftest import ApiClient, error
from tests.api.endpoints import of, required_of, writes_of

ROUTER = "newsletter"


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", of(ROUTER))
def test_wrong_or_revoked_key_is_401(endpoint, api_key, device):
    checks.unauthorized(endpoint, api_key, device)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", writes_of(ROUTER))
def test_read_only_key_cannot_write(endpoint, read_only_api, device):
    checks.read_only_cannot_write(endpoint, read_only_api, device)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", of(ROUTER))
def test_another_organizations_device_is_404(endpoint, api, device, other_device):
    checks.other_organizations_device(endpoint, api, device, other_device)


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "name"), required_of(ROUTER))
def test_missing_required_field_is_400_naming_it(endpoint, name, api, device):
    checks.missing_field(endpoint, name, api, device)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", of(ROUTER))
def test_device_not_connected(endpoint, api, device):
    checks.offline(endpoint, api, device)


@pytest.mark.django_db(transaction=True)
def test_unfollow_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    newsletter = wa.sandbox.network_summary()["newsletters"][0]["jid"]
    wa.sandbox.follow_newsletter(phone=device.phone, jid=newsletter)
    answer = api.post("/newsletter/unfollow", {"newsletter_id": newsletter}).json()
    assert answer == {
        "code": "SUCCESS",
        "message": "Newsletter unfollowed.",
        "results": {"newsletter_id": newsletter},
    }
    assert api.get("/user/my/newsletters").json()["results"]["data"] == []
    assert AuditEvent.objects.filter(organization=org, action="newsletter.unfollow").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["905551112233@s.whatsapp.net", "120363000000000001@g.us", "", "x y"])
def test_not_a_newsletter_is_400_naming_the_field(api, value):
    error(
        api.post("/newsletter/unfollow", {"newsletter_id": value}), 400, "VALIDATION_ERROR", "newsletter_id"
    )
