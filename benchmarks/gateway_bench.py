"""Gateway benchmark: how many sandbox devices one session worker holds, and event-to-WebSocket latency.

    .venv/bin/python benchmarks/gateway_bench.py [--devices 500] [--events 300]

Runs on the embedded default (SQLite in a temporary directory, the in-memory channel layer) with the
sandbox backend, in this one process. Prints:
- resident memory (VmRSS of /proc/self/status) before and after one worker holds N connected devices,
  and the difference per device;
- the time from a backend event (a received message emitted by a device's client) to a WebSocket client of
  the live dashboard receiving its HTML (persisted, published, rendered, sent): median and p99.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def setup_django(data_dir: str) -> None:
    os.environ["WAPORTAL_DATA_DIR"] = data_dir
    os.environ["WA_BACKEND"] = "sandbox"
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.WA_SANDBOX_DELAY = 0.05
    call_command("migrate", verbosity=0)


def make_data(n_devices: int):
    from accounts.models import Membership, Organization, Role, User
    from messaging.models import Device
    from messaging.whatsapp import sandbox

    sandbox.seed_network(seed=1)
    org = Organization.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user(email="bench@example.com", password="bench password 123")
    Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    devices = []
    for i in range(n_devices):
        device = Device.objects.create(organization=org, name=f"Bench {i}", wanted=False)
        session = sandbox.store_session(device_id=device.pk, phone=f"1888{i:07d}")
        Device.objects.filter(pk=device.pk).update(jid=session["jid"], phone=session["phone"])
        devices.append(device.pk)
    peer = sandbox.peer_phones()[0]
    return org, user, devices, peer


def session_cookie(user) -> bytes:
    from django.test import Client

    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def main(args, org, user, device_ids, peer, cookie):
    from channels.testing import WebsocketCommunicator

    from messaging import runtime
    from messaging.models import Device
    from messaging.sessions import SessionWorker
    from messaging.whatsapp import protocol
    from waportal.asgi import application

    runtime.set_loop(asyncio.get_running_loop())
    worker = SessionWorker(lease_seconds=30)
    await worker.start()  # holds nothing yet: no device is wanted
    baseline = rss_kib()

    started = time.perf_counter()
    await runtime.db(lambda: Device.objects.filter(pk__in=device_ids).update(wanted=True))
    await worker.heartbeat()
    deadline = time.monotonic() + 300
    while sum(1 for c in worker.clients.values() if c.is_connected()) < len(device_ids):
        if time.monotonic() > deadline:
            raise SystemExit("the devices did not all connect")
        await asyncio.sleep(0.05)
    connect_seconds = time.perf_counter() - started
    held = rss_kib()
    per_device = (held - baseline) / max(1, len(device_ids))
    beats = []
    for _ in range(5):  # one heartbeat: renew every lease, look for free devices and queued messages
        t0 = time.perf_counter()
        await worker.heartbeat()
        beats.append((time.perf_counter() - t0) * 1000)

    # Latency: a received message emitted by one device's client, until the browser's socket has it.
    device_id = device_ids[0]
    communicator = WebsocketCommunicator(
        application,
        f"/ws/live/?device={device_id}",
        headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect(timeout=10)
    assert connected, "the WebSocket was refused"
    client = worker.clients[device_id]
    peer_jid = f"{peer}@s.whatsapp.net"
    latencies = []
    for i in range(args.events + 10):
        message = protocol.IncomingMessage(
            id=protocol.generate_message_id(),
            chat=peer_jid,
            sender=peer_jid,
            sender_name="Peer",
            text=f"bench {i}",
            timestamp=time.time(),
        )
        t0 = time.perf_counter()
        await client._emit(protocol.MessageEvent(message=message))
        await communicator.receive_from(timeout=10)
        while not await communicator.receive_nothing(timeout=0.001):
            await communicator.receive_from(timeout=1)
        if i >= 10:  # warm-up
            latencies.append((time.perf_counter() - t0) * 1000)
    await communicator.disconnect()
    await worker.stop()
    runtime.clear_loop(asyncio.get_running_loop())
    return {
        "devices": len(device_ids),
        "connect_seconds": connect_seconds,
        "rss_baseline_mib": baseline / 1024,
        "rss_holding_mib": held / 1024,
        "per_device_kib": per_device,
        "heartbeat_ms": statistics.median(beats),
        "latencies": latencies,
    }


def run():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="waportal-bench-") as data_dir:
        setup_django(data_dir)
        org, user, device_ids, peer = make_data(args.devices)
        cookie = session_cookie(user)
        result = asyncio.run(main(args, org, user, device_ids, peer, cookie))
    lat = result["latencies"]
    print("gateway benchmark (sandbox backend, embedded default: SQLite + in-memory channel layer)")
    print(
        f"  devices held by one worker : {result['devices']} (all connected in {result['connect_seconds']:.1f} s)"
    )
    print(
        f"  RSS before / holding       : {result['rss_baseline_mib']:.1f} MiB / {result['rss_holding_mib']:.1f} MiB"
    )
    print(f"  memory per device          : {result['per_device_kib']:.1f} KiB")
    print(f"  one heartbeat (all leases) : {result['heartbeat_ms']:.1f} ms (median of 5)")
    print(
        f"  event -> WebSocket latency : median {statistics.median(lat):.2f} ms, p99 {pct(lat, 99):.2f} ms, "
        f"max {max(lat):.2f} ms over {len(lat)} received messages"
    )


if __name__ == "__main__":
    run()
