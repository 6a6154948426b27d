"""Fixtures of the sandbox network tests (test_sandbox*.py): a fast, seeded network and its devices."""

import pytest
from asgiref.sync import sync_to_async

from messaging.whatsapp import sandbox
from tests.conftest import make_organization
from tests.messaging.sandbox_harness import Network


@pytest.fixture
def fast_sandbox(settings):
    """Peers answer in 10 ms, the network is seeded, and its clock is the real one."""
    settings.WA_SANDBOX_DELAY = 0.01
    settings.WA_SANDBOX_SEED = 7
    sandbox.set_clock(None)


@pytest.fixture
async def net(fast_sandbox):
    organization = await sync_to_async(make_organization)()
    network = Network(organization)
    yield network
    await network.close()
