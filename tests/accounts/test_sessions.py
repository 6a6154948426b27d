"""Session cookies: Secure whenever the request came over HTTPS, and a configurable lifetime."""

import pytest
from django.urls import reverse

from tests.conftest import make_user


def _sign_in(client, **extra):
    make_user("ann@example.com")
    return client.post(
        reverse("accounts:login"),
        {"username": "ann@example.com", "password": "correct horse battery"},
        **extra,
    )


@pytest.fixture
def cookies_not_secure_by_setting(settings):
    # The embedded default (and DEBUG): the settings alone do not mark cookies Secure.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


def test_cookies_are_secure_when_the_request_came_over_https(client, db, cookies_not_secure_by_setting):
    client.get(reverse("accounts:login"), secure=True)
    assert client.cookies["csrftoken"]["secure"] is True
    response = _sign_in(client, secure=True)
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] is True and response.cookies["sessionid"]["httponly"]


def test_cookies_are_not_secure_over_plain_http_so_signing_in_on_127_0_0_1_works(
    client, db, cookies_not_secure_by_setting
):
    response = _sign_in(client)
    assert response.status_code == 302
    assert not response.cookies["sessionid"]["secure"]
    assert client.get(reverse("accounts:organization_new")).status_code == 200


def test_behind_a_proxy_its_header_says_https(client, db, settings, cookies_not_secure_by_setting):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = _sign_in(client, HTTP_X_FORWARDED_PROTO="https")
    assert response.cookies["sessionid"]["secure"] is True


def test_session_lasts_session_cookie_age(client, db, settings):
    settings.SESSION_COOKIE_AGE = 3600
    response = _sign_in(client)
    assert response.cookies["sessionid"]["max-age"] == 3600
    assert 3590 <= client.session.get_expiry_age() <= 3600
