"""Repeated failed sign-ins lock the account out from that address (django-axes)."""

import pytest
from django.urls import reverse

from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def attempt(client, password, ip="198.51.100.9"):
    return client.post(
        reverse("accounts:login"), {"username": "ann@example.com", "password": password}, REMOTE_ADDR=ip
    )


def test_lockout_after_the_configured_failures(client, settings):
    make_user("ann@example.com")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "wrong").status_code == 200
    locked = attempt(client, "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    # even the right password is refused while locked
    locked = attempt(client, "correct horse battery")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_other_addresses_are_not_locked_out(client, settings):
    make_user("ann@example.com")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong")
    response = attempt(client, "correct horse battery", ip="192.0.2.1")
    assert response.status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, settings):
    make_user("ann@example.com")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, "correct horse battery").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, "correct horse battery").status_code == 302
