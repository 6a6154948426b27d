"""Fixtures of the sandbox network tests (test_sandbox*.py) and of the neonize backend tests (test_neonize_*.py)."""

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


# ---------------------------------------------------------------------------------- neonize backend


@pytest.fixture
def neo():
    """neonize's real client class, autospecced: a wrong method name or argument fails."""
    from unittest.mock import create_autospec

    from neonize.aioze.client import ContactStore, NewAClient
    from neonize.aioze.events import Event as NeonizeEvents
    from neonize.proto import Neonize_pb2 as np

    from tests.messaging.neonize_harness import ME, jid

    client = create_autospec(NewAClient, instance=True)
    # Instance attributes NewAClient sets in __init__ (autospec only sees the class).
    client.contact = create_autospec(ContactStore, instance=True)
    client.event = create_autospec(NeonizeEvents, instance=True)
    client.qr = client.event.qr
    client.get_me.return_value = np.Device(JID=jid(ME, device=12), PushName="Our Shop")
    client.send_message.return_value = np.SendResponse(ID="3EB0SERVERID", Timestamp=1_700_000_000)
    return client


@pytest.fixture
def opened():
    return []


@pytest.fixture
def backend(neo, opened, tmp_path):
    from messaging.whatsapp.neonize.backend import NeonizeBackend

    def make_neonize(**kwargs):
        opened.append(kwargs)
        return neo

    from tests.messaging.neonize_harness import MemoryMessageIds

    return NeonizeBackend(
        session_dir=tmp_path / "sessions",
        database_url="",
        make_neonize=make_neonize,
        backoff=lambda attempt: 0,
        message_ids=MemoryMessageIds,
    )


@pytest.fixture
def emitted():
    from tests.messaging.neonize_harness import Recorder

    return Recorder()


@pytest.fixture
async def neonize_client(backend, neo, emitted):
    """A NeonizeClient whose neonize connection reported Connected (through the real event path)."""
    from neonize.proto import Neonize_pb2 as np

    from tests.messaging.neonize_harness import ME

    c = backend.create_client(device_id=7, jid=ME, emit=emitted)
    c.neo = neo
    await c.on_event(neo, np.Connected(status=True))
    emitted.events.clear()
    return c


@pytest.fixture
def fake_go(monkeypatch):
    """neonize's Go library replaced by FakeGo for the test; neonize's Python code runs as it is."""
    import neonize.aioze.client as neonize_client_module
    import neonize.aioze.events as neonize_events

    from tests.messaging.neonize_harness import FakeGo

    go = FakeGo()
    monkeypatch.setattr(neonize_client_module, "gocode", go)
    # connect() sets the loop neonize's callbacks run on only when none is set yet.
    monkeypatch.setattr(neonize_events, "event_global_loop", None)
    yield go
    go.release_all()


@pytest.fixture
def whatsmeow_postgres(transactional_db):
    """whatsmeow's PostgreSQL store in the test database (PostgreSQL runs only), its tables made by neonize's Go
    library; emptied afterwards (the test database's flush knows only Django's tables)."""
    import psycopg
    from django.db import connection
    from neonize.aioze.client import ClientFactory

    from tests.messaging.neonize_harness import postgres_test_url

    if connection.vendor != "postgresql":
        pytest.skip("the shared session store is PostgreSQL's")
    url = postgres_test_url()
    ClientFactory.get_all_devices_from_db(url)
    yield url
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM whatsmeow_device")  # cascades to the secrets, sessions, keys...
        conn.execute("DELETE FROM whatsmeow_lid_map")
