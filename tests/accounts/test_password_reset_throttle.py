"""Asking for password reset mails is limited per address and per client address (like sign-in attempts are),
with the same answer whether or not the address has an account."""

from datetime import timedelta
from html import unescape

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import PasswordResetRequest
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

SENT = "a link to set a new password is on its way"
REFUSED = "Too many requests to reset a password; try again in"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PASSWORD_RESET_LIMIT_PER_ADDRESS = 2
    settings.PASSWORD_RESET_LIMIT_PER_IP = 4
    settings.PASSWORD_RESET_WINDOW_MINUTES = 15


def ask(client, email, ip="198.51.100.9", **headers):
    return client.post(
        reverse("accounts:password_reset"), {"email": email}, REMOTE_ADDR=ip, follow=True, **headers
    )


def test_an_address_gets_so_many_mails_then_is_told_to_wait(client):
    make_user("ann@example.com")
    for _ in range(2):
        assert SENT in ask(client, "ann@example.com").content.decode()
    refused = ask(client, "Ann@Example.com ", ip="192.0.2.1")  # another client, the same address
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 15 * 60
    body = unescape(refused.content.decode())
    assert REFUSED in body and "15 minutes" in body and SENT not in body
    assert len(mail.outbox) == 2  # no third mail


def test_an_unknown_address_is_limited_the_same_so_the_limit_tells_nothing(client):
    make_user("ann@example.com")
    answers = []
    for email in ("ann@example.com", "nobody@example.com"):
        answers.append([ask(client, email).status_code for _ in range(3)])
    assert answers[0] == answers[1] == [200, 200, 429]


def test_one_client_address_asking_for_many_addresses_is_stopped(client):
    codes = [ask(client, f"user{i}@example.com").status_code for i in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert ask(client, "user9@example.com", ip="192.0.2.1").status_code == 200  # others are not


def test_the_limit_passes_with_the_window(client):
    make_user("ann@example.com")
    for _ in range(2):
        ask(client, "ann@example.com")
    assert ask(client, "ann@example.com").status_code == 429
    PasswordResetRequest.objects.update(
        requested_at=PasswordResetRequest.objects.first().requested_at - timedelta(minutes=16)
    )
    assert SENT in ask(client, "ann@example.com").content.decode()
    assert len(mail.outbox) == 3
    assert PasswordResetRequest.objects.count() == 1  # the old ones are gone


def test_a_bad_address_is_refused_as_before_and_not_counted(client):
    for _ in range(3):
        assert ask(client, "not an email").status_code == 200
    assert not PasswordResetRequest.objects.exists()


def test_the_refusal_speaks_turkish(client):
    for _ in range(2):
        ask(client, "ann@example.com")
    refused = ask(client, "ann@example.com", headers={"Accept-Language": "tr"})
    assert refused.status_code == 429
    assert "Parola sıfırlama için çok fazla istek" in unescape(refused.content.decode())
