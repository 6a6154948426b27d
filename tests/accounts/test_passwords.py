"""Changing one's password, and setting a new one from a link mailed to the account's address."""

import re

from django.contrib.auth import get_user
from django.core import mail
from django.urls import reverse

from tests.conftest import client_for

OLD = "correct horse battery"
NEW = "a brand new secret 42"


def _reset_link() -> str:
    assert len(mail.outbox) == 1
    found = re.search(r"https?://[^/\s]+(/accounts/password/reset/[^\s]+/)", mail.outbox[0].body)
    assert found, mail.outbox[0].body
    return found.group(1)


def test_login_page_offers_a_reset_link(client, db):
    body = client.get(reverse("accounts:login")).content.decode()
    assert reverse("accounts:password_reset") in body


def test_a_reset_mail_carries_a_link_that_sets_a_new_password_once(client, owner):
    response = client.post(reverse("accounts:password_reset"), {"email": owner.email}, follow=True)
    assert response.status_code == 200
    assert "a link to set a new password is on its way" in response.content.decode()
    assert mail.outbox[0].to == [owner.email] and "waportal" in mail.outbox[0].subject
    link = _reset_link()

    form = client.get(link, follow=True)  # Django moves the token out of the address first
    assert form.status_code == 200 and 'name="new_password1"' in form.content.decode()
    response = client.post(
        form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW}, follow=True
    )
    assert "Your password is set" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(NEW)

    again = client.get(link, follow=True).content.decode()  # used: it works once
    assert "not valid any more" in again and 'name="new_password1"' not in again
    signed_in = client.post(reverse("accounts:login"), {"username": owner.email, "password": NEW})
    assert signed_in.status_code == 302


def test_reset_link_uses_https_when_the_request_came_over_https(client, owner):
    client.post(reverse("accounts:password_reset"), {"email": owner.email}, secure=True)
    assert "https://testserver/accounts/password/reset/" in mail.outbox[0].body


def test_reset_says_the_same_for_an_unknown_address_and_mails_nothing(client, db):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"}, follow=True)
    assert "a link to set a new password is on its way" in response.content.decode()
    assert not mail.outbox


def test_reset_refuses_a_bad_address_next_to_the_field(client, db):
    response = client.post(reverse("accounts:password_reset"), {"email": "not an email"})
    assert response.status_code == 200
    assert 'class="field-error"' in response.content.decode() and not mail.outbox


def test_a_weak_new_password_is_refused_with_the_reason(client, owner):
    client.post(reverse("accounts:password_reset"), {"email": owner.email})
    form = client.get(_reset_link(), follow=True)
    response = client.post(form.redirect_chain[-1][0], {"new_password1": "123", "new_password2": "123"})
    assert response.status_code == 200 and "too short" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(OLD)


def test_a_reset_ends_every_session(client, owner):
    elsewhere = client_for(owner)
    client.post(reverse("accounts:password_reset"), {"email": owner.email})
    form = client.get(_reset_link(), follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert elsewhere.get(reverse("accounts:organization")).status_code == 302  # sent to sign in


def test_change_password_keeps_this_browser_and_signs_out_the_others(owner):
    browser, elsewhere = client_for(owner), client_for(owner)
    page = browser.get(reverse("accounts:password_change"))
    assert page.status_code == 200 and 'name="old_password"' in page.content.decode()
    response = browser.post(
        reverse("accounts:password_change"),
        {"old_password": OLD, "new_password1": NEW, "new_password2": NEW},
        follow=True,
    )
    assert "Your password is changed" in response.content.decode()
    assert get_user(response.wsgi_request).is_authenticated
    assert browser.get(reverse("accounts:organization")).status_code == 200
    assert elsewhere.get(reverse("accounts:organization")).status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW)


def test_change_password_needs_the_current_one(owner):
    browser = client_for(owner)
    response = browser.post(
        reverse("accounts:password_change"),
        {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 200 and 'class="field-error"' in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password(OLD)


def test_change_password_needs_a_signed_in_user(client, db):
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_without_a_mail_server_the_link_is_printed_in_the_log(client, owner, settings, capsys):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
    client.post(reverse("accounts:password_reset"), {"email": owner.email})
    assert "http://testserver/accounts/password/reset/" in capsys.readouterr().out


def test_reset_pages_speak_turkish(client, db):
    page = client.get(reverse("accounts:password_reset"), headers={"Accept-Language": "tr"}).content.decode()
    assert "Parolanızı mı unuttunuz?" in page and "Bağlantıyı gönder" in page
