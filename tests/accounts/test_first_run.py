"""A fresh install: `/` leads to the one-time setup (behind the token in the server's log), `serve` prints
its link, a user in no organization is led to create one, and 403/404/500 pages say what to do."""

from io import StringIO
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from accounts import first_run
from accounts.models import Membership, User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
PASSWORD = "a long enough first password"


def test_a_fresh_install_leads_to_the_setup_page_and_the_login_page_says_so():
    client = Client()
    assert client.get("/")["Location"] == reverse("accounts:setup")
    locked = client.get(reverse("accounts:setup"))
    assert locked.status_code == 403 and "data-setup-locked" in locked.content.decode()
    assert "data-first-run" in client.get(reverse("accounts:login")).content.decode()


def test_the_setup_makes_the_first_owner_once():
    client = Client()
    url = reverse("accounts:setup")
    page = client.get(url, {"token": first_run.setup_token()}).content.decode()
    assert 'name="organization"' in page
    bad = client.post(
        url, {"token": first_run.setup_token(), "email": "x", "password": "1", "organization": ""}
    )
    assert bad.status_code == 400 and not User.objects.exists()
    body = bad.content.decode()
    assert "Enter an email address." in body and "Give the organization a name." in body
    done = client.post(
        url,
        {
            "token": first_run.setup_token(),
            "email": "Boss@Example.com",
            "password": PASSWORD,
            "organization": "Acme",
        },
    )
    assert done.status_code == 302
    owner = User.objects.get()
    assert owner.email == "boss@example.com" and owner.is_superuser
    assert Membership.objects.get(user=owner).role == "owner"
    # Signed in, and the page is gone for good.
    assert client.get("/", follow=True).status_code == 200
    assert Client().get(url, {"token": first_run.setup_token()})["Location"] == reverse("accounts:login")
    assert "data-first-run" not in Client().get(reverse("accounts:login")).content.decode()


def test_the_setup_refuses_a_wrong_token():
    response = Client().post(
        reverse("accounts:setup"),
        {"token": "guess", "email": "a@example.com", "password": PASSWORD, "organization": "Acme"},
    )
    assert response.status_code == 403 and not User.objects.exists()


def test_serve_prints_the_setup_link_only_while_nobody_exists():
    from waportal.management.commands.serve import Command

    out = StringIO()
    command = Command(stdout=out)
    with mock.patch("waportal.launcher.serve"):
        command.handle(host="127.0.0.1", port=8123, web_only=True)
    assert f"http://127.0.0.1:8123/accounts/setup/?token={first_run.setup_token()}" in out.getvalue()
    User.objects.create_user(email="someone@example.com", password=PASSWORD)
    out = StringIO()
    with mock.patch("waportal.launcher.serve"):
        Command(stdout=out).handle(host="127.0.0.1", port=8123, web_only=True)
    assert "setup" not in out.getvalue()


def test_a_user_in_no_organization_is_led_to_create_one():
    user = User.objects.create_superuser(email="root@example.com", password=PASSWORD)
    client = client_for(user)
    response = client.get(reverse("messaging:devices"))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:organization_new")
    page = client.get(reverse("accounts:organization_new")).content.decode()
    assert reverse("messaging:devices") not in page  # the nav leads nowhere it cannot go


def test_not_found_is_a_page_with_the_nav_and_what_to_do(owner_client, settings):
    settings.DEBUG = False
    response = owner_client.get("/dashboard/devices/999999/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "data-not-found" in body and 'class="main-nav"' in body and "Go to the dashboard" in body


def test_server_error_page_renders_without_a_request():
    from django.template.loader import render_to_string

    body = render_to_string("500.html")
    assert "data-server-error" in body and "Something went wrong" in body


def test_forbidden_says_the_role_and_what_it_may_do(viewer_client, org):
    from tests.pages.conftest import make_device

    device = make_device(org, status="connected")
    response = viewer_client.get(reverse("messaging:compose", args=[device.pk]))
    assert response.status_code == 403
    body = response.content.decode()
    assert "data-your-role" in body and "Viewers read chats" in body and "ask an owner or admin" in body


def test_a_viewer_sees_a_read_only_banner_and_roles_are_described(viewer_client, owner_client, org):
    assert "data-read-only-banner" in viewer_client.get(reverse("accounts:organization")).content.decode()
    page = owner_client.get(reverse("accounts:organization")).content.decode()
    assert "data-read-only-banner" not in page
    assert "What each role may do" in page and "Operators send and answer messages" in page
