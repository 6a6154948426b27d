"""Webhook benchmark: deliveries per second to a local receiver, received -> delivered delay, a slow endpoint.

Two modes, the same measurements:

- `--mode embedded` (default): the embedded default as `manage.py serve` runs it (SQLite file, the in-process
  Celery worker on the memory broker), in a throw-away data directory;
- `--mode celery`: PostgreSQL (`--database-url`, recreated: a benchmark's own database) and a real
  `celery -A waportal worker --pool threads` process on Redis (`--redis-url`), on a queue of its own.

This process stores the events (`messaging.events.handle`, or `webhooks.dispatch_event` for the raw rate) as
the session worker would; the receiver runs in a process of its own (it is not part of what we measure),
answers 200 at once on /hook/<n> and after `--slow-seconds` on /slow. It prints:

1. throughput: `--deliveries` events over `--devices` numbers (one ordered queue each), one endpoint;
2. the same through the whole received-message path (store, live push, dispatch);
3. received -> delivered: `--messages` messages one at a time, p50/p99 ("received" is the hand-over to
   events.handle, "delivered" the receiver having the request; both on the machine's monotonic clock);
4. head-of-line: four endpoints, one answering after 2 s; the three others' rate, against the rate they
   get with no slow endpoint beside them.

Also CPU seconds per delivery of the delivering process(es) (steadier than rates on a shared machine):

    .venv/bin/python benchmarks/webhook_bench.py [--mode embedded|celery] [--deliveries 1000] [--devices 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.harness import cpu_seconds, load_average, percentile, recreate_database  # noqa: E402


def _serve(conn, slow_seconds: float) -> None:
    """The receiver process: answers, and sends (message id, path, arrival time) back through `conn`."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.monotonic()
            if self.path == "/slow":
                time.sleep(slow_seconds)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            message_id = json.loads(body).get("payload", {}).get("id", "")
            with lock:
                conn.send((message_id, self.path, now))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    conn.send(server.server_address[1])
    server.serve_forever()


class Receiver:
    """The receiver process, and what it reported: arrival time by (path, message id)."""

    def __init__(self, slow_seconds: float) -> None:
        ours, theirs = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, slow_seconds), daemon=True
        )
        self.process.start()
        self.conn = ours
        self.url = f"http://127.0.0.1:{ours.recv()}"
        self.arrived: dict[tuple[str, str], float] = {}
        self.by_path: dict[str, int] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message_id, path, at = self.conn.recv()
            except (EOFError, OSError):
                return
            with self.cond:
                self.arrived[(path, message_id)] = at
                self.by_path[path] = self.by_path.get(path, 0) + 1
                self.cond.notify_all()

    def wait(self, predicate, timeout: float = 300.0, what: str = "deliveries") -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise SystemExit(f"timed out waiting for {what}: {self.by_path}")

    def stop(self) -> None:
        self.process.kill()


def start_celery(env: dict, queue: str, threads: int, data_dir: str) -> subprocess.Popen:
    log = open(Path(data_dir) / "celery.log", "wb")  # noqa: SIM115 - open for the worker's whole life
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "waportal", "worker", "-Q", queue, "--pool", "threads"]
        + ["-c", str(threads), "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip"]
        + ["--without-mingle"],
        env=env,
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "celery"], default="embedded")
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument(
        "--devices", type=int, default=8, help="numbers sending at once (one ordered queue each)"
    )
    parser.add_argument("--messages", type=int, default=200, help="messages timed one by one for the delay")
    parser.add_argument("--concurrency", type=int, default=4, help="task worker threads")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/waportal_bench_webhooks"
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()

    receiver = Receiver(args.slow_seconds)
    data_dir = tempfile.mkdtemp(prefix="waportal-webhook-bench-")
    queue = f"webhook-bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="waportal.settings",
        WAPORTAL_DATA_DIR=data_dir,
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        LOG_LEVEL="WARNING",
        SECRET_KEY=os.environ.get("SECRET_KEY", "benchmark-only-not-secret"),
        SECURE_SSL_REDIRECT="false",
        WEBHOOK_TASK_QUEUE=queue,
    )
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    if args.mode == "celery":
        recreate_database(args.database_url)
        os.environ.update(DATABASE_URL=args.database_url, REDIS_URL=args.redis_url)
    else:
        os.environ.pop("WEBHOOK_TASK_QUEUE")  # the embedded worker consumes the default queue

    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from django.core.management import call_command
    from django.db import transaction

    from accounts.models import Organization
    from messaging import events, webhooks
    from messaging.models import Device, WebhookDelivery, WebhookEndpoint
    from messaging.whatsapp import protocol

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench", slug="bench")
    devices = [
        Device.objects.create(
            organization=org, name=f"Phone {i}", status="connected", jid=f"9055500000{i:02d}@s.whatsapp.net"
        )
        for i in range(args.devices)
    ]
    webhooks.create_endpoint(organization=org, url=f"{receiver.url}/hook/0", events=["message"])

    if args.mode == "celery":
        worker = start_celery(dict(os.environ), queue, args.concurrency, data_dir)
        worker_pid = worker.pid
        stop_worker = worker.terminate
    else:
        from waportal.tasks_embedded import EmbeddedTaskWorker

        embedded = EmbeddedTaskWorker(concurrency=args.concurrency, periodic=False).start()
        worker_pid = os.getpid()
        stop_worker = embedded.stop
    handle = async_to_sync(events.handle)
    sender = "905559990001@s.whatsapp.net"

    def receive(device, message_id: str, text: str) -> None:
        message = protocol.IncomingMessage(
            id=message_id, chat=sender, sender=sender, sender_name="Bench", text=text
        )
        handle(protocol.MessageEvent(device_id=device.pk, message=message))

    def dispatch(prefix: str, count: int) -> None:
        with transaction.atomic():
            for n in range(count):
                payload = {"id": f"{prefix}{n:07d}", "chat_id": sender, "from": sender, "text": f"{n}"}
                webhooks.dispatch_event(device=devices[n % len(devices)], event="message", payload=payload)

    def arrived(path: str, prefix: str) -> int:
        return sum(1 for (p, m) in receiver.arrived if p == path and m.startswith(prefix))

    def wait_recorded(count: int) -> None:
        deadline = time.monotonic() + 120
        while WebhookDelivery.objects.filter(status="succeeded").count() < count:
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the deliveries to be recorded")
            time.sleep(0.2)

    try:
        # Warm up (connections, the worker's first task) before anything is timed.
        dispatch("W", len(devices))
        receiver.wait(lambda: arrived("/hook/0", "W") >= len(devices), what="warm-up")
        wait_recorded(len(devices))

        # 1. Throughput: the events stored at once (one transaction), as a backlog the worker works through.
        started = time.monotonic()
        dispatch("T", args.deliveries)  # the deliveries are enqueued when this transaction commits
        queued = time.monotonic()
        cpu_before = cpu_seconds(worker_pid)
        receiver.wait(lambda: arrived("/hook/0", "T") >= args.deliveries)
        last = max(at for (p, m), at in receiver.arrived.items() if m.startswith("T"))
        throughput = args.deliveries / (last - queued)
        wait_recorded(len(devices) + args.deliveries)
        # Embedded: the whole process (this one), idle but for the task worker meanwhile.
        cpu_per_delivery = (cpu_seconds(worker_pid) - cpu_before) / args.deliveries * 1000
        load_1 = load_average()

        # 2. The whole received-message path (store, live push, dispatch) for each event.
        e2e_count = max(1, args.deliveries // 4)
        started_e2e = time.monotonic()
        for n in range(e2e_count):
            receive(devices[n % len(devices)], f"E{n:07d}", f"end to end {n}")
        receiver.wait(lambda: arrived("/hook/0", "E") >= e2e_count)
        e2e_throughput = e2e_count / (time.monotonic() - started_e2e)

        # 3. Delay: one message at a time, from handing it to events.handle to the receiver having it.
        delays = []
        for n in range(args.messages):
            message_id = f"L{n:07d}"
            t0 = time.monotonic()
            receive(devices[0], message_id, f"latency {n}")
            receiver.wait(lambda message_id=message_id: ("/hook/0", message_id) in receiver.arrived)
            delays.append((receiver.arrived[("/hook/0", message_id)] - t0) * 1000)
        load_3 = load_average()

        # 4. Head-of-line: three more endpoints, one of the four slow; then the same four all fast.
        fast_count = max(len(devices), args.deliveries // 4)
        rates = {}
        for label, slow in (("all four fast", False), ("with one slow endpoint", True)):
            for old in WebhookEndpoint.objects.filter(organization=org):
                webhooks.delete_endpoint(organization=org, endpoint=old)
            urls = [f"{receiver.url}/hook/{i}" for i in range(1, 4)]
            urls.append(f"{receiver.url}/slow" if slow else f"{receiver.url}/hook/4")
            for url in urls:
                webhooks.create_endpoint(organization=org, url=url, events=["message"])
            prefix = "S" if slow else "F"
            started_hol = time.monotonic()
            dispatch(prefix, fast_count)
            receiver.wait(
                lambda prefix=prefix: all(arrived(f"/hook/{i}", prefix) >= fast_count for i in range(1, 4)),
                what=f"the fast endpoints ({label})",
            )
            took = time.monotonic() - started_hol
            rates[label] = (3 * fast_count / took, arrived("/slow", prefix))
        load_4 = load_average()
    finally:
        stop_worker()
        receiver.stop()

    print(f"webhook deliveries, mode {args.mode}: {args.concurrency} task threads, {len(devices)} numbers")
    print(f"  [load average {load_1}] throughput: {args.deliveries} stored in {queued - started:.2f}s, ")
    print(
        f"    all delivered {last - started:.2f}s after the first was stored: {throughput:.1f} deliveries/s"
    )
    print(f"    CPU of the delivering process: {cpu_per_delivery:.2f} ms per delivery")
    print(f"  whole received-message path ({e2e_count} messages): {e2e_throughput:.1f} messages/s")
    print(f"  [load average {load_3}] received -> delivered, {args.messages} messages one at a time:")
    print(
        f"    p50 {percentile(delays, 50):.1f} ms, p99 {percentile(delays, 99):.1f} ms, "
        f"min {min(delays):.1f} ms, max {max(delays):.1f} ms"
    )
    print(f"  [load average {load_4}] head-of-line, {fast_count} events to each of 4 endpoints:")
    for label, (rate, slow_done) in rates.items():
        extra = f" (the slow one answered {slow_done} meanwhile)" if "slow" in label else ""
        print(f"    {label}: the three fast endpoints together {rate:.1f} deliveries/s{extra}")


if __name__ == "__main__":
    main()
