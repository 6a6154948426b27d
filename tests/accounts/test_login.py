"""Signing in and out, and what a signed-out visitor sees."""

from django.urls import reverse

from tests.conftest import make_user


def test_signed_out_visitor_is_sent_to_login(client, db):
    response = client.get(reverse("accounts:organization"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]
    assert "<title>Sign in · waportal</title>" in client.get(response["Location"]).content.decode()


def test_sign_in_with_email_and_password_shows_the_organization(client, owner, org):
    response = client.post(
        reverse("accounts:login"), {"username": owner.email, "password": "correct horse battery"}, follow=True
    )
    assert response.status_code == 200
    assert org.name in response.content.decode()


def test_wrong_password_is_refused_with_a_message(client, db):
    make_user("ann@example.com")
    response = client.post(reverse("accounts:login"), {"username": "ann@example.com", "password": "wrong"})
    assert response.status_code == 200
    assert (
        "correct email" in response.content.decode().lower()
        or "enter a correct" in response.content.decode().lower()
    )
