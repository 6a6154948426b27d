"""The /newsletter endpoints: behaviour on the sandbox (the conventions every endpoint keeps: test_conventions.py)."""

import pytest

from accounts.models import AuditEvent
from tests.api.conftest import ApiClient, error


@pytest.mark.django_db(transaction=True)
def test_unfollow_on_the_sandbox(wa, org, api_key):
    device = wa.linked_device(org)
    api = ApiClient(api_key)
    newsletter = wa.sandbox.network_summary()["newsletters"][0]["jid"]
    wa.sandbox.follow_newsletter(phone=device.phone, jid=newsletter)
    answer = api.post("/newsletter/unfollow", {"newsletter_id": newsletter}).json()
    assert answer == {"code": "SUCCESS", "message": f"Unfollowed {newsletter}."}  # no results, as the peer
    assert api.get("/user/my/newsletters").json()["results"]["data"] == []
    assert AuditEvent.objects.filter(organization=org, action="newsletter.unfollow").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["905551112233@s.whatsapp.net", "120363000000000001@g.us", "", "x y"])
def test_not_a_newsletter_is_400_naming_the_field(api, value):
    error(
        api.post("/newsletter/unfollow", {"newsletter_id": value}), 400, "VALIDATION_ERROR", "newsletter_id"
    )
