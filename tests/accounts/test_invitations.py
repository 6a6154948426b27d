"""Inviting by email and link; accepting as an existing or a new user; expired, used and withdrawn links."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Invitation, Membership, Role, User
from accounts.tenancy import SESSION_KEY
from tests.conftest import add_member, client_for, make_user

pytestmark = pytest.mark.django_db


def invite(client, email="new@example.com", role="operator", **headers):
    return client.post(reverse("accounts:invite"), {"email": email, "role": role}, headers=headers or None)


def test_owner_invites_by_email_and_the_link_is_shown_and_mailed(owner_client, owner, org):
    response = invite(owner_client, "New@Example.com", "admin", HX_Request="true")
    assert response.status_code == 200
    invitation = Invitation.objects.get(organization=org)
    assert invitation.email == "new@example.com" and invitation.role == Role.ADMIN
    assert invitation.invited_by == owner and invitation.is_open
    link = f"http://testserver/accounts/invitations/{invitation.token}/"
    assert link in response.content.decode()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert link in mail.outbox[0].body and "Acme" in mail.outbox[0].subject
    event = AuditEvent.objects.get(action="invitation.create")
    assert event.actor == owner and event.details == {"email": "new@example.com", "role": "admin"}
    # the open invitation is listed on the page, with its link
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert "new@example.com" in page and link in page


def test_invitation_survives_a_mail_server_that_is_down(owner_client, org):
    with mock.patch("accounts.services.send_mail", side_effect=ConnectionRefusedError):
        response = invite(owner_client)
    assert response.status_code == 302
    page = owner_client.get(response["Location"]).content.decode()
    assert "could not be sent" in page
    assert Invitation.objects.get(organization=org).is_open


def test_inviting_a_member_or_a_bad_address_is_refused(owner_client, viewer, org):
    response = invite(owner_client, viewer.email)
    assert response.status_code == 400 and "already a member" in response.content.decode()
    response = invite(owner_client, "not-an-email")
    assert response.status_code == 400 and "valid email" in response.content.decode()
    response = invite(owner_client, "x@example.com", "emperor")
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_a_new_invitation_replaces_the_open_one(owner_client, org):
    invite(owner_client)
    first = Invitation.objects.get()
    invite(owner_client, role="viewer")
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert Invitation.objects.filter(revoked_at__isnull=True).get().role == Role.VIEWER


@pytest.mark.parametrize("fixture", ["viewer_client", "operator_client"])
def test_viewer_and_operator_cannot_invite(request, fixture, org):
    c = request.getfixturevalue(fixture)
    assert invite(c).status_code == 403
    assert not Invitation.objects.exists()
    assert not mail.outbox


def test_admin_cannot_invite_an_owner_but_may_invite_an_admin(admin_user, org):
    c = client_for(admin_user)
    assert invite(c, role="owner").status_code == 403
    assert not Invitation.objects.exists()
    assert invite(c, role="admin").status_code == 302
    assert Invitation.objects.get().role == Role.ADMIN


def test_anonymous_cannot_invite(client, org):
    assert invite(client).status_code == 302
    assert not Invitation.objects.exists()


def test_withdraw_an_invitation(owner_client, org):
    invite(owner_client)
    invitation = Invitation.objects.get()
    assert owner_client.post(reverse("accounts:invitation_revoke", args=[invitation.pk])).status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1
    response = client_for(make_user("new@example.com")).get(
        reverse("accounts:invitation", args=[invitation.token])
    )
    assert response.status_code == 410 and "withdrawn" in response.content.decode()


def test_withdrawing_another_organizations_invitation_is_404(owner_client, outsider_client, org):
    invite(owner_client)
    invitation = Invitation.objects.get()
    assert (
        outsider_client.post(reverse("accounts:invitation_revoke", args=[invitation.pk])).status_code == 404
    )
    invitation.refresh_from_db()
    assert invitation.is_open


def test_viewer_cannot_withdraw(owner_client, viewer_client, org):
    invite(owner_client)
    invitation = Invitation.objects.get()
    assert viewer_client.post(reverse("accounts:invitation_revoke", args=[invitation.pk])).status_code == 403
    invitation.refresh_from_db()
    assert invitation.is_open


# --- accepting -----------------------------------------------------------------------------------


@pytest.fixture
def invitation(owner_client, org):
    invite(owner_client, "new@example.com", "viewer")
    return Invitation.objects.get()


def test_new_user_sets_name_and_password_and_joins(client, invitation, org):
    url = reverse("accounts:invitation", args=[invitation.token])
    page = client.get(url).content.decode()
    assert "Join Acme" in page and "First name" in page
    response = client.post(
        url,
        {
            "first_name": "Ayşe",
            "last_name": "Yılmaz",
            "password": "a long passphrase 42",
            "password2": "a long passphrase 42",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.get_full_name() == "Ayşe Yılmaz" and user.check_password("a long passphrase 42")
    assert Membership.objects.get(user=user, organization=org).role == Role.VIEWER
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    # signed in, in the new organization
    assert client.session[SESSION_KEY] == org.id
    assert "<h1>Acme</h1>" in client.get(reverse("accounts:organization")).content.decode()
    event = AuditEvent.objects.get(action="invitation.accept")
    assert event.actor == user and event.details["new_user"] is True


def test_new_user_with_a_weak_or_mismatched_password_is_refused(client, invitation):
    url = reverse("accounts:invitation", args=[invitation.token])
    response = client.post(url, {"first_name": "A", "password": "123", "password2": "123"})
    assert response.status_code == 400 and "too short" in response.content.decode()
    response = client.post(
        url, {"first_name": "A", "password": "a long passphrase 42", "password2": "different phrase 42"}
    )
    assert response.status_code == 400 and "differ" in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()
    invitation.refresh_from_db()
    assert invitation.is_open


def test_existing_user_is_asked_to_sign_in_then_joins(client, invitation, org):
    user = make_user("new@example.com")
    url = reverse("accounts:invitation", args=[invitation.token])
    page = client.get(url).content.decode()
    assert "Sign in to accept" in page
    # posting without signing in does not create or join anything
    response = client.post(url, {"password": "x", "password2": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert not Membership.objects.filter(user=user).exists()
    # sign in through the login page, which brings the person back to the invitation
    response = client.post(
        response["Location"],
        {"username": "new@example.com", "password": "correct horse battery", "next": url},
    )
    assert response["Location"] == url
    assert "Accept and join" in client.get(url).content.decode()
    assert client.post(url).status_code == 302
    assert Membership.objects.get(user=user, organization=org).role == Role.VIEWER


def test_a_user_in_another_organization_joins_and_can_switch(invitation, org, other_org):
    user = add_member(other_org, Role.OWNER, user=make_user("new@example.com"))
    c = client_for(user)
    assert c.post(reverse("accounts:invitation", args=[invitation.token])).status_code == 302
    assert set(user.memberships.values_list("organization__name", flat=True)) == {"Acme", "Rival"}
    assert "<h1>Acme</h1>" in c.get(reverse("accounts:organization")).content.decode()


def test_signed_in_as_someone_else_cannot_accept(invitation):
    c = client_for(make_user("someone@example.com"))
    url = reverse("accounts:invitation", args=[invitation.token])
    assert "Sign out and sign in as new@example.com" in c.get(url).content.decode()
    assert c.post(url).status_code == 403
    invitation.refresh_from_db()
    assert invitation.is_open


def test_used_invitation_is_refused(client, invitation):
    url = reverse("accounts:invitation", args=[invitation.token])
    client.post(
        url, {"first_name": "A", "password": "a long passphrase 42", "password2": "a long passphrase 42"}
    )
    other = client_for(make_user("new2@example.com"))
    response = other.get(url)
    assert response.status_code == 410 and "already been used" in response.content.decode()
    assert client.post(url).status_code == 410
    assert Membership.objects.filter(user__email="new@example.com").count() == 1


def test_expired_invitation_is_refused(client, invitation, org):
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    url = reverse("accounts:invitation", args=[invitation.token])
    response = client.get(url)
    assert response.status_code == 410 and "expired" in response.content.decode()
    response = client.post(
        url, {"first_name": "A", "password": "a long passphrase 42", "password2": "a long passphrase 42"}
    )
    assert response.status_code == 410
    assert not User.objects.filter(email="new@example.com").exists()
    user = make_user("new@example.com")
    assert client_for(user).post(url).status_code == 410
    assert not Membership.objects.filter(user=user, organization=org).exists()


def test_unknown_token_is_404(client, db):
    assert client.get(reverse("accounts:invitation", args=["nope"])).status_code == 404
