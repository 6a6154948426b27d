"""The conventions every endpoint of the contract keeps, checked over every row of endpoints.ENDPOINTS:
wrong or revoked key (401), read-only key on a write (403, nothing done), another organization's device
(404), each required field missing (400 naming it), device not connected."""

import pytest

from tests.api import checks
from tests.api.endpoints import of, required_of, writes_of


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", of())
def test_wrong_or_revoked_key_is_401(endpoint, api_key, device):
    checks.unauthorized(endpoint, api_key, device)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", writes_of())
def test_read_only_key_cannot_write(endpoint, read_only_api, device):
    checks.read_only_cannot_write(endpoint, read_only_api, device)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", of())
def test_another_organizations_device_is_404(endpoint, api, device, other_device):
    checks.other_organizations_device(endpoint, api, device, other_device)


@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "name"), required_of())
def test_missing_required_field_is_400_naming_it(endpoint, name, api, device):
    checks.missing_field(endpoint, name, api, device)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", of())
def test_device_not_connected(endpoint, api, device):
    checks.offline(endpoint, api, device)
