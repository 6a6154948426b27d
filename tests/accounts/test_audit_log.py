"""The audit log page: owners and admins read their organization's writes, paginated and filterable."""

import re
from html import unescape

import pytest
from django.urls import reverse

from accounts.services import record_audit
from accounts.views import AUDIT_PAGE_SIZE
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_owner_sees_who_did_what_to_which_object_when_and_from_where(owner_client, owner, viewer, org):
    from accounts.models import Membership

    m = Membership.objects.get(user=viewer)
    owner_client.post(
        reverse("accounts:member_role", args=[m.pk]), {"role": "operator"}, REMOTE_ADDR="203.0.113.7"
    )
    page = owner_client.get(reverse("accounts:audit_log")).content.decode()
    assert "member.role_change" in page
    assert owner.email in page  # who
    assert viewer.email in page  # which object
    assert "203.0.113.7" in page  # from where
    assert "to: operator" in page


def test_admin_sees_the_log(admin_user, org):
    record_audit(organization=org, action="device.create", object_repr="Phone 1")
    page = client_for(admin_user).get(reverse("accounts:audit_log")).content.decode()
    assert "device.create" in page and "Phone 1" in page


@pytest.mark.parametrize("fixture", ["viewer_client", "operator_client"])
def test_viewer_and_operator_cannot_read_the_log(request, fixture, org):
    assert request.getfixturevalue(fixture).get(reverse("accounts:audit_log")).status_code == 403


def test_anonymous_is_sent_to_login(client, db):
    response = client.get(reverse("accounts:audit_log"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_log_shows_only_this_organizations_events(owner_client, org, other_org):
    record_audit(organization=other_org, action="secret.thing", object_repr="their secret")
    record_audit(organization=org, action="device.create", object_repr="ours")
    page = owner_client.get(reverse("accounts:audit_log")).content.decode()
    assert "ours" in page
    assert "their secret" not in page and "secret.thing" not in page


def test_api_key_writes_name_the_key(owner_client, org, api_key):
    from accounts.models import ApiKey

    record_audit(organization=org, action="message.send", api_key=ApiKey.objects.get(), object_repr="hello")
    assert "API key test key" in owner_client.get(reverse("accounts:audit_log")).content.decode()


def test_paginated_newest_first_and_filtered_by_action(owner_client, org):
    for i in range(AUDIT_PAGE_SIZE + 5):
        record_audit(organization=org, action="message.send", object_repr=f"msg-{i:03d}")
    record_audit(organization=org, action="device.remove", object_repr="the-phone")
    first = owner_client.get(reverse("accounts:audit_log")).content.decode()
    assert "the-phone" in first and f"msg-{AUDIT_PAGE_SIZE + 4:03d}" in first
    assert "msg-000" not in first
    assert "Page 1 of 2" in first
    second = owner_client.get(reverse("accounts:audit_log"), {"page": 2}).content.decode()
    assert "msg-000" in second and "the-phone" not in second
    filtered = owner_client.get(reverse("accounts:audit_log"), {"action": "device.remove"}).content.decode()
    assert "the-phone" in filtered and "msg-0" not in filtered
    # the filter offers the actions that occur
    assert '<option value="device.remove"' in first


def test_htmx_filter_answers_only_the_table(owner_client, org):
    record_audit(organization=org, action="device.remove", object_repr="the-phone")
    response = owner_client.get(
        reverse("accounts:audit_log"), {"action": "device.remove"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert (
        body.lstrip().startswith('<section id="audit-events">')
        and "the-phone" in body
        and "<html" not in body
    )


def test_actions_read_as_words_in_both_languages(owner_client, owner, org):
    record_audit(organization=org, action="message.queue", actor=owner)
    record_audit(organization=org, action="something.new", actor=owner)
    page = owner_client.get(reverse("accounts:audit_log")).content.decode()
    assert ">Sent a message</span>" in page and "<code>message.queue</code>" not in page
    assert ">something.new</span>" in page  # an action nobody named yet shows as itself
    assert '<option value="message.queue" >Sent a message</option>' in page
    owner_client.cookies["django_language"] = "tr"
    assert "Mesaj gönderdi" in owner_client.get(reverse("accounts:audit_log")).content.decode()


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["Message", "Number", "Group", "Webhook", "API key", "Member", "Organization"]),
        ("tr", ["Mesaj", "Numara", "Grup", "Webhook", "API anahtarı", "Üye", "Kuruluş"]),
    ],
)
def test_the_object_says_what_kind_of_thing_it_is_in_words_not_model_labels(
    owner_client, org, language, words
):
    types = [
        "messaging.message",
        "messaging.device",
        "groups.group",
        "messaging.webhookendpoint",
        "accounts.apikey",
        "accounts.membership",
        "accounts.organization",
    ]
    for i, object_type in enumerate(types):
        record_audit(
            organization=org, action="device.rename", object_type=object_type, object_repr=f"thing {i}"
        )
    record_audit(
        organization=org, action="device.rename", object_type="messaging.somethingnew", object_repr="new"
    )
    page = owner_client.get(reverse("accounts:audit_log"), HTTP_ACCEPT_LANGUAGE=language).content.decode()
    table = page[page.index('id="audit-events"') :]
    kinds = re.findall(r'<small class="audit-kind">([^<]*)</small>', table)
    assert sorted(unescape(k) for k in kinds) == sorted(words)
    assert not any(t in table for t in [*types, "messaging.somethingnew"])  # no model labels, named or not
