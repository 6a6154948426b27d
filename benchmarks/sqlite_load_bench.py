"""Embedded default under load: `manage.py serve` on SQLite beside CPU burners, varied calls and two webhooks.

Runs the embedded default (one process: web, session workers, task worker; a SQLite file) on the sandbox
backend in a throw-away data directory, with the demo organization and two webhook endpoints (every event)
on a local receiver. While `--burners` processes keep the CPUs busy, one sequential client makes `--calls`
varied calls: sends to simulated peers that answer (echo, react: received messages, receipts, reactions),
to a quiet one, chat and message lists, status. Then it waits (bounded) for the webhooks to settle and
prints:

- 5xx answers the client got;
- "database is locked" in the server's log (each a traceback of a write that SQLite refused);
- lost events: received events whose handling failed ("handling ... failed" in the log);
- webhook deliveries: requests the receiver got, deliveries stored, and those not finished at the end.

    .venv/bin/python benchmarks/sqlite_load_bench.py [--calls 150] [--burners N] [--settle 90]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
sys.path.insert(0, str(BASE_DIR))

from benchmarks.harness import EmbeddedServer  # noqa: E402
from tests.webhooks.receiver import Receiver  # noqa: E402  (a plain HTTP server; imports no Django)

ENDPOINTS = """
from accounts.models import Organization
from messaging import webhooks
org = Organization.objects.get(slug="demo")
for path in ("a", "b"):
    webhooks.create_endpoint(organization=org, url="{url}/" + path, events=list(webhooks.EVENT_NAMES.values()))
from messaging.whatsapp import sandbox
print(json.dumps({{b: sandbox.peer_phones(b)[0] for b in ("echo", "react", "quiet")}}))
"""


# A second process writing to the same file (an admin's `manage.py` command run beside `serve`): it does not
# share the server's in-process lock, so it shows whether every writer takes the same path.
SIDE_WRITER = """
import time
from django.db import OperationalError, transaction
from accounts.models import Organization
locked = writes = 0
stop = time.monotonic() + {seconds}
while time.monotonic() < stop:
    try:
        with transaction.atomic():
            Organization.objects.filter(slug="demo").update(name="Demo " + str(writes % 10))
        writes += 1
    except OperationalError as exc:
        locked += "locked" in str(exc)
    time.sleep(0.01)
print(writes, locked)
"""


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def deliveries_by_status(db_path: Path) -> Counter:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT status, COUNT(*) FROM messaging_webhookdelivery GROUP BY status").fetchall()
    return Counter(dict(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--clients", type=int, default=1, help="Client threads making the calls (1: one sequential client)."
    )
    parser.add_argument(
        "--side-writers",
        type=int,
        default=0,
        help="Other processes writing to the same SQLite file meanwhile (`manage.py shell` loops).",
    )
    parser.add_argument("--side-seconds", type=float, default=20, help="How long each side writer writes.")
    parser.add_argument("--settle", type=float, default=90, help="Most seconds to wait for the webhooks.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    result = run(
        calls=args.calls,
        burners=args.burners,
        clients=args.clients,
        side_writers=args.side_writers,
        side_seconds=args.side_seconds,
        settle=args.settle,
        port=args.port,
    )
    print(
        f"SQLite load benchmark: {args.calls} calls from {args.clients} client(s) beside {args.burners} CPU "
        f"burners (took {result['calls_took']:.1f} s), two webhook endpoints, one `manage.py serve` process"
    )
    print(f"  answers: {result['answers']}")
    print(f"  5xx answers: {result['errors_5xx']}")
    print(f"  'database is locked' in the log: {result['locked']}")
    print(f"  lost events (handling failed): {result['lost']} {result['lost_by_kind']}")
    print(
        f"  webhook requests received: {result['received']} {result['received_by_path']}; "
        f"deliveries stored: {result['stored']} {result['deliveries']}"
    )
    if args.side_writers:
        print(
            f"  side writers ({args.side_writers} processes): {result['side_writes']} writes, "
            f"{result['side_locked']} refused with 'database is locked'"
        )
    print(f"  server log: {result['log']}")


def run(
    *,
    calls: int,
    burners: int,
    clients: int = 1,
    side_writers: int = 0,
    side_seconds: float = 20,
    settle: float = 90,
    port: int = 0,
    env_extra: dict | None = None,
) -> dict:
    """One run (see the module's docstring); returns the figures. tests/webhooks/test_embedded_serve.py uses it."""
    args = argparse.Namespace(
        calls=calls,
        burners=burners,
        clients=clients,
        side_writers=side_writers,
        side_seconds=side_seconds,
        settle=settle,
        port=port,
    )
    receiver = Receiver().start()
    server = EmbeddedServer(
        prefix="waportal-sqlite-bench-",
        port=args.port,
        env={
            "WA_SANDBOX_DELAY": os.environ.get("WA_SANDBOX_DELAY", "0.05"),
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            **(env_extra or {}),
        },
        setup=["import json\n" + ENDPOINTS.format(url=receiver.url)],
    )
    data_dir, env, log_path = server.data_dir, server.env, server.log_path
    burners: list[subprocess.Popen] = []
    answers: Counter = Counter()
    try:
        server.__enter__()  # migrate, the demo, the endpoints; serve until the demo device is connected
        peers = json.loads(server.setup_output[0].strip().splitlines()[-1])
        demo, key, base = server.demo, server.key, server.base
        started = time.monotonic()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)

        side = [
            subprocess.Popen(
                [
                    PYTHON,
                    str(BASE_DIR / "manage.py"),
                    "shell",
                    "-c",
                    SIDE_WRITER.format(seconds=args.side_seconds),
                ],
                env=env,
                cwd=BASE_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(args.side_writers)
        ]
        burners = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(args.burners)]
        calls = [
            lambda n: client.post("/send/message", json={"phone": peers["echo"], "message": f"echo {n}"}),
            lambda n: client.post("/send/message", json={"phone": peers["react"], "message": f"react {n}"}),
            lambda n: client.get("/chats"),
            lambda n: client.post("/send/message", json={"phone": peers["quiet"], "message": f"quiet {n}"}),
            lambda n: client.get("/app/status"),
            lambda n: client.post(
                "/send/location", json={"phone": peers["echo"], "latitude": 41.0, "longitude": 29.0}
            ),
            lambda n: client.get("/app/devices"),
            lambda n: client.post(
                "/send/poll", json={"phone": peers["echo"], "question": f"q{n}", "options": ["a", "b"]}
            ),
            lambda n: client.get("/user/info", params={"phone": peers["react"]}),
            lambda n: client.post(
                "/send/contact",
                json={"phone": peers["react"], "contact_name": "Ayşe", "contact_phone": peers["quiet"]},
            ),
            lambda n: client.get("/group/info", params={"group_id": demo["group_id"]}),
            lambda n: client.get("/user/my/groups"),
            lambda n: client.post(
                "/send/image",
                data={"phone": peers["echo"], "caption": f"image {n}"},
                files={"image": ("i.png", PNG, "image/png")},
            ),
        ]
        numbers = iter(range(args.calls))
        numbers_lock = threading.Lock()

        def client_thread():
            while True:
                with numbers_lock:
                    n = next(numbers, None)
                if n is None:
                    return
                try:
                    answer = calls[n % len(calls)](n)
                    key = answer.status_code
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                with numbers_lock:
                    answers[key] += 1

        threads = [threading.Thread(target=client_thread) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        calls_took = time.monotonic() - started
        side_writes = side_locked = 0
        for process in side:
            out = process.communicate(timeout=args.side_seconds + 120)[0].strip().splitlines()
            writes, locked_count = (int(x) for x in out[-1].split())
            side_writes, side_locked = side_writes + writes, side_locked + locked_count
        for burner in burners:
            burner.kill()

        # Settle: until no delivery is waiting (or the bound).
        settle_deadline = time.monotonic() + args.settle
        db_path = data_dir / "waportal.sqlite3"
        while time.monotonic() < settle_deadline:
            statuses = deliveries_by_status(db_path)
            if not any(statuses[s] for s in ("pending", "sending", "retrying")):
                break
            time.sleep(1)
        statuses = deliveries_by_status(db_path)
    finally:
        for burner in burners:
            burner.kill()
        server.stop()
        receiver.stop()

    text = log_path.read_text(errors="replace")
    lost = re.findall(r"handling (\w+)(?: for device \d+)? failed", text)
    received = Counter(r.path for r in receiver.requests)
    return {
        "calls_took": calls_took,
        "answers": dict(sorted(answers.items(), key=str)),
        "errors_5xx": sum(n for code, n in answers.items() if isinstance(code, int) and code >= 500),
        "locked": text.count("database is locked"),
        "lost": len(lost),
        "lost_by_kind": dict(Counter(lost)),
        "received": sum(received.values()),
        "received_by_path": dict(received),
        "received_keys": Counter((r.path, r.headers.get("idempotency-key")) for r in receiver.requests),
        "stored": sum(statuses.values()),
        "deliveries": dict(statuses),
        "side_writes": side_writes,
        "side_locked": side_locked,
        "log": str(log_path),
    }


if __name__ == "__main__":
    main()
