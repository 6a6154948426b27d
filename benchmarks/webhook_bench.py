"""Webhook benchmark: deliveries per second to a local receiver, and message received -> webhook delivered delay.

Runs the embedded default as `manage.py serve` does (SQLite file, the in-process Celery worker on the
memory broker) against an HTTP receiver on 127.0.0.1, in a throw-away data directory:

    .venv/bin/python benchmarks/webhook_bench.py [--deliveries 1000] [--devices 8] [--messages 200]

"Received" is the moment the session worker hands the message to `messaging.events.handle` (it is then
stored, pushed live and queued for webhooks); "delivered" is when the receiver has the request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


class Receiver:
    """Answers 200 to every POST and notes when each message id arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                message_id = json.loads(body).get("payload", {}).get("id", "")
                with receiver.cond:
                    receiver.arrived[message_id] = now
                    receiver.count += 1
                    receiver.cond.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, predicate, timeout: float = 300.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise SystemExit(f"timed out: {self.count} requests arrived")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument(
        "--devices", type=int, default=8, help="numbers sending at once (one ordered queue each)"
    )
    parser.add_argument("--messages", type=int, default=200, help="messages timed one by one for the delay")
    parser.add_argument("--concurrency", type=int, default=4, help="threads of the embedded task worker")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="waportal-webhook-bench-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="waportal.settings",
        WAPORTAL_DATA_DIR=data_dir,
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        LOG_LEVEL="WARNING",
    )
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)  # the embedded default

    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from django.core.management import call_command
    from django.db import transaction

    from accounts.models import Organization
    from messaging import events, webhooks
    from messaging.models import Device, WebhookDelivery
    from messaging.whatsapp import protocol
    from waportal.tasks_embedded import EmbeddedTaskWorker

    call_command("migrate", verbosity=0)
    receiver = Receiver()
    org = Organization.objects.create(name="Bench", slug="bench")
    devices = [
        Device.objects.create(
            organization=org, name=f"Phone {i}", status="connected", jid=f"9055500000{i:02d}@s.whatsapp.net"
        )
        for i in range(args.devices)
    ]
    webhooks.create_endpoint(organization=org, url=receiver.url, events=["message"])
    worker = EmbeddedTaskWorker(concurrency=args.concurrency, periodic=False).start()
    handle = async_to_sync(events.handle)
    sender = "905559990001@s.whatsapp.net"

    def receive(device, message_id: str, text: str) -> None:
        message = protocol.IncomingMessage(
            id=message_id, chat=sender, sender=sender, sender_name="Bench", text=text
        )
        handle(protocol.MessageEvent(device_id=device.pk, message=message))

    # 1. Delivery throughput: N events dispatched at once over several numbers (one ordered queue per
    #    number), the way events.dispatch_webhooks hands them over; timed until the last attempt is recorded.
    recorded = threading.Semaphore(0)
    webhooks.attempt_recorded.connect(lambda **kw: recorded.release(), weak=False, dispatch_uid="bench")
    payloads = [
        {
            "id": f"T{n:07d}",
            "chat_id": sender,
            "from": sender,
            "from_name": "Bench",
            "text": f"throughput {n}",
        }
        for n in range(args.deliveries)
    ]
    started = time.perf_counter()
    with transaction.atomic():
        for n, payload in enumerate(payloads):
            webhooks.dispatch_event(device=devices[n % len(devices)], event="message", payload=payload)
    queued = time.perf_counter()
    for _ in range(args.deliveries):
        if not recorded.acquire(timeout=300):
            raise SystemExit("timed out waiting for deliveries")
    finished = time.perf_counter()
    throughput = args.deliveries / (finished - started)
    succeeded = WebhookDelivery.objects.filter(status="succeeded").count()

    # 1b. The same through the whole received-message path (store, live push, dispatch) for each event.
    before = WebhookDelivery.objects.count()
    e2e_count = max(1, args.deliveries // 4)
    started_e2e = time.perf_counter()
    for n in range(e2e_count):
        receive(devices[n % len(devices)], f"E{n:07d}", f"end to end {n}")
    for _ in range(e2e_count):
        if not recorded.acquire(timeout=300):
            raise SystemExit("timed out waiting for deliveries")
    e2e_throughput = e2e_count / (time.perf_counter() - started_e2e)
    assert WebhookDelivery.objects.count() == before + e2e_count

    # 2. Delay: one message at a time, from handing it to events.handle to the receiver having it.
    delays = []
    device = devices[0]
    for n in range(args.messages):
        message_id = f"L{n:07d}"
        t0 = time.perf_counter()
        receive(device, message_id, f"latency {n}")
        receiver.wait(lambda message_id=message_id: message_id in receiver.arrived)
        delays.append((receiver.arrived[message_id] - t0) * 1000)

    worker.stop()
    print(
        f"webhook deliveries: {args.deliveries} from {len(devices)} numbers, {args.concurrency} task threads"
    )
    print(
        f"  stored and queued in {queued - started:.2f}s; all delivered and recorded in {finished - started:.2f}s"
    )
    print(f"  throughput: {throughput:.1f} deliveries/s ({succeeded} recorded as succeeded)")
    print(
        f"  through the whole received-message path ({e2e_count} messages): {e2e_throughput:.1f} messages/s"
    )
    print(f"message received -> webhook delivered, {args.messages} messages one at a time:")
    print(
        f"  median {statistics.median(delays):.1f} ms, p99 {percentile(delays, 99):.1f} ms, "
        f"min {min(delays):.1f} ms, max {max(delays):.1f} ms"
    )


if __name__ == "__main__":
    main()
