"""Shared fixtures: organizations, members of each role, API keys, and a second tenant to prove isolation."""

import itertools

import pytest
from django.test import Client

from accounts.models import ApiKey, Membership, Organization, Role, User

pytest_plugins = ["tests.runtime_fixtures"]

_seq = itertools.count(1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last, after pytest-django has grouped the rest. Playwright's sync API runs an asyncio
    loop in this thread while a browser is open; should one ever outlive its fixture, no async test comes after
    it to fail with "cannot be called from a running event loop"."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/browser/"))


@pytest.fixture(autouse=True)
def _isolated_data_dir(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.WA_SESSION_DIR = tmp_path / "sessions"
    # Production settings (REDIS_URL set, DEBUG off) redirect plain HTTP; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(scope="session", autouse=True)
def _drop_stray_connections(django_db_setup, django_db_blocker):
    """Threads that outlive their tests (the embedded task worker's pool, session workers) keep PostgreSQL
    connections open until the process exits, which would stop the test database from being dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def make_user(email: str | None = None, password: str = "correct horse battery") -> User:
    return User.objects.create_user(email=email or f"user{next(_seq)}@example.com", password=password)


def make_organization(name: str | None = None) -> Organization:
    n = next(_seq)
    return Organization.objects.create(name=name or f"Org {n}", slug=f"org-{n}")


def add_member(organization: Organization, role: str = Role.OPERATOR, user: User | None = None) -> User:
    user = user or make_user()
    Membership.objects.create(organization=organization, user=user, role=role)
    return user


def make_api_key(organization: Organization, access: str = "full", created_by: User | None = None) -> str:
    raw, prefix, digest = ApiKey.generate()
    ApiKey.objects.create(
        organization=organization,
        name="test key",
        access=access,
        key_prefix=prefix,
        key_hash=digest,
        created_by=created_by,
    )
    return raw


@pytest.fixture
def org(db):
    return make_organization("Acme")


@pytest.fixture
def other_org(db):
    return make_organization("Rival")


@pytest.fixture
def owner(org):
    return add_member(org, Role.OWNER)


@pytest.fixture
def admin_user(org):
    return add_member(org, Role.ADMIN)


@pytest.fixture
def operator(org):
    return add_member(org, Role.OPERATOR)


@pytest.fixture
def viewer(org):
    return add_member(org, Role.VIEWER)


@pytest.fixture
def outsider(other_org):
    """A member (owner) of another organization."""
    return add_member(other_org, Role.OWNER)


def client_for(user: User) -> Client:
    c = Client()
    c.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return c


@pytest.fixture
def owner_client(owner):
    return client_for(owner)


@pytest.fixture
def operator_client(operator):
    return client_for(operator)


@pytest.fixture
def viewer_client(viewer):
    return client_for(viewer)


@pytest.fixture
def outsider_client(outsider):
    return client_for(outsider)


@pytest.fixture
def api_key(org, owner):
    return make_api_key(org, created_by=owner)


@pytest.fixture
def other_api_key(other_org, outsider):
    return make_api_key(other_org, created_by=outsider)
