"""The `wa` fixture: a runtime loop in a thread with a session worker on the sandbox backend.

    @pytest.mark.django_db(transaction=True)
    def test_x(wa, org):
        device = wa.linked_device(org)                  # created, linked by a simulated scan, connected
        ...                                             # act (service, view, API call)
        data = wa.wait_event("message.sent", device=device, predicate=lambda d: d["id"] == wa_id)

`wa.wait_event` returns the data of the first matching event published since the last `wa.mark()` (the
fixture's start, or the end of `linked_device`) that no earlier `wait_event` returned, so an event published
between the action and the wait is not missed and waits may come in any order; with `since_start=True` it
looks from the fixture's start. `wa.mark()` skips everything published so far. `wa.run(coro)` runs a coroutine on
the runtime loop (WebSocket communicators must run there: the in-memory channel layer lives on that loop).
`wa.peers` are the simulated peers' phones, `wa.sandbox` the sandbox module, `wa.worker` the SessionWorker;
`wa.restart_worker()` stops it (releasing its leases) and starts a new one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from messaging import events, runtime

# Short enough that a test can watch a lease run out, long enough that a busy machine never lets a live
# worker's lease lapse between two heartbeats (every LEASE_SECONDS / 3).
LEASE_SECONDS = 10.0


def reset_channel_layer() -> None:
    """Forget the process's channel layer: the in-memory one is bound to the loop that first used it."""
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)


class RuntimeHarness:
    """A runtime loop in a background thread, registered with `messaging.runtime`, and session workers on it."""

    def __init__(self, backend=None, *, lease_seconds: float = LEASE_SECONDS):
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.events: list[tuple[str, int, dict]] = []
        self._mark = 0
        self._returned: set[int] = set()
        self._cond = threading.Condition()
        self.worker = None
        reset_channel_layer()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="wa-runtime", daemon=True)
        self.thread.start()
        started.wait(10)
        runtime.set_loop(self.loop)
        events.add_listener(self._on_event)

    # -- the loop

    def run(self, coro, timeout: float = 30):
        """Run a coroutine on the runtime loop and return its result (raises what it raised)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_worker(self):
        from messaging.sessions import SessionWorker

        self.worker = SessionWorker(backend=self.backend, lease_seconds=self.lease_seconds)
        self.run(self.worker.start())
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.run(self.worker.stop(), timeout=60)
            self.worker = None

    def restart_worker(self):
        self.stop_worker()
        return self.start_worker()

    def close(self) -> None:
        events.remove_listener(self._on_event)
        try:
            self.stop_worker()
        finally:

            async def cancel_rest():
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                layer = _layer_if_made()
                close_pools = getattr(layer, "close_pools", None)
                if close_pools is not None:
                    await close_pools()

            try:
                self.run(cancel_rest(), timeout=30)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(30)
                runtime.clear_loop(self.loop)
                self.loop.close()
                runtime.close_db_connections()
                reset_channel_layer()

    # -- events

    def _on_event(self, name: str, device_id: int, data: dict) -> None:
        with self._cond:
            self.events.append((name, device_id, data))
            self._cond.notify_all()

    def mark(self) -> None:
        """Skip every event published so far: the next wait_event sees only newer ones."""
        with self._cond:
            self._mark = len(self.events)

    def wait_event(
        self,
        name: str,
        *,
        device=None,
        predicate: Callable[[dict], bool] | None = None,
        timeout: float = 10,
        since_start: bool = False,
    ) -> dict:
        device_id = None if device is None else (device if isinstance(device, int) else device.pk)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = 0 if since_start else self._mark
            while True:
                while index < len(self.events):
                    ev_name, ev_device, data = self.events[index]
                    index += 1
                    if index - 1 in self._returned or ev_name != name:
                        continue
                    if (device_id is not None and ev_device != device_id) or (
                        predicate is not None and not predicate(data)
                    ):
                        continue
                    self._returned.add(index - 1)
                    return data
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(n, d) for n, d, _ in self.events[-15:]]
                    raise AssertionError(
                        f"no {name!r} event for device {device_id} within {timeout}s; last events: {seen}"
                    )
                self._cond.wait(remaining)


def _layer_if_made():
    from channels.layers import channel_layers

    return channel_layers.backends.get("default")


class WA(RuntimeHarness):
    """The `wa` fixture's object: the harness on the sandbox backend, with linking by simulated scan."""

    def __init__(self, *, lease_seconds: float = LEASE_SECONDS):
        from messaging.whatsapp import get_backend, sandbox

        self.sandbox = sandbox
        sandbox.seed_network()
        super().__init__(get_backend("sandbox"), lease_seconds=lease_seconds)

    @property
    def peers(self) -> list[str]:
        return self.sandbox.peer_phones()

    def linked_device(self, organization, name: str = "Phone", *, phone: str | None = None):
        """A device created, linked through the real path (start_linking, QR, simulated scan), connected."""
        from messaging.services import devices

        device = devices.create_device(organization=organization, name=name)
        device = devices.start_linking(organization=organization, device=device)
        qr_code = device.qr_code or self.wait_event("device.qr", device=device)["qr_code"]
        self.sandbox.phone_scan(qr_code=qr_code, phone=phone)  # None: a fresh simulated phone
        self.wait_event("device.connected", device=device)
        device.refresh_from_db()
        self.mark()
        return device


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a database file, not pytest-django's shared in-memory one.

    The session worker writes from its own threads while the test writes from the main one. SQLite's
    shared-cache in-memory database answers such overlap with "database table is locked" at once, where a
    file (in WAL mode, with the busy timeout of the settings) makes the second writer wait its turn.
    """
    from django.conf import settings

    for alias in settings.DATABASES:
        db = settings.DATABASES[alias]
        test = db.setdefault("TEST", {})
        # (Under pytest-xdist the suffix fixture has named it test_<path>_gw0, a file in no directory: each
        # worker has a directory of its own from tmp_path_factory instead.)
        if "sqlite" in db["ENGINE"]:
            # Named as the settings name the embedded database, so that another process (a runsessions
            # worker in test_failover) opens this one, with the same options, given WAPORTAL_DATA_DIR.
            test["NAME"] = str(tmp_path_factory.mktemp(f"db_{alias}") / "waportal.sqlite3")


@pytest.fixture(autouse=True)
def _runtime_db_connections_closed():
    """Close what the runtime's DB threads opened during a test (PostgreSQL cannot drop a database in use)."""
    yield
    runtime.close_db_connections()


@pytest.fixture
def wa(transactional_db, settings):
    """A session worker on the sandbox backend, on a runtime loop in a background thread (see the module)."""
    settings.WA_BACKEND = "sandbox"
    settings.WA_LEASE_SECONDS = LEASE_SECONDS
    # Tests that expect `sent` wait for the event, not for a clock: a loaded CI machine may take longer than
    # the 2 s a user waits before being told `queued`.
    settings.WA_SEND_WAIT_SECONDS = 20
    # Likewise linking: the worker may take longer than 8 s to take the number and show its first QR code.
    settings.WA_QR_WAIT_SECONDS = 20
    harness = WA()
    try:
        harness.start_worker()
        yield harness
    finally:
        harness.close()


@pytest.fixture
def runtime_harness(transactional_db, settings):
    """The runtime loop without a worker or backend: tests start workers on their own backends."""
    settings.WA_LEASE_SECONDS = LEASE_SECONDS
    harness = RuntimeHarness()
    try:
        yield harness
    finally:
        harness.close()
