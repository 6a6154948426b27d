"""Soak: the embedded default under steady traffic for `--minutes`, then checks that nothing grew or leaked.

One `manage.py serve` process (SQLite, sandbox backend, throw-away data directory) with `--numbers` linked
numbers (the demo organization's and more), one webhook endpoint (every event) on a local receiver, and:

- steady sends: `--rate` POST /send/message a second in all, round robin over the numbers, to the sandbox's
  echo peer (each answers: an incoming message, receipts);
- a browser-like WebSocket client on /ws/live/ (signed in as the demo login) that pings every second.

Each minute it prints p99 of the send answer, of webhook delay (the envelope's timestamp -> the receiver having
it) and of the socket's ping -> pong, with the server's RSS, file descriptors, threads and SQLite connections.
At the end (the load stopped) it waits, bounded, for the outbox and the webhook backlog to drain (0 for 3 s)
and checks, against the figures after warm-up (a sixth of the run; of a run under 6 minutes a fifth, at most a
minute): RSS grew < 10%, no more file descriptors, threads or database connections than then (a small slack),
both backlogs at 0, no 5xx, the socket never dropped. Exits 1 if a check fails.

    .venv/bin/python benchmarks/soak.py --minutes 60 [--numbers 20] [--rate 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sqlite3
import struct
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.harness import EmbeddedServer, load_average, memory_mb, open_fds, percentile, threads  # noqa: E402

SETUP = """
import json
from django.conf import settings
from django.test import Client
from accounts.models import Organization, User
from messaging import webhooks
from messaging.models import Device, DeviceStatus
from messaging.whatsapp import sandbox
org = Organization.objects.get(slug="demo")
ids = list(org.devices.values_list("pk", flat=True))
for n in range(1, {numbers}):
    device = Device.objects.create(organization=org, name=f"Soak {{n}}")
    s = sandbox.store_session(device_id=device.pk, phone=f"9055520{{n:05d}}", push_name=f"Soak {{n}}")
    Device.objects.filter(pk=device.pk).update(
        jid=s["jid"], phone=s["phone"], push_name=s["push_name"], wanted=True, status=DeviceStatus.CONNECTING
    )
    ids.append(device.pk)
webhooks.create_endpoint(organization=org, url="{url}", events=list(webhooks.EVENT_NAMES.values()))
client = Client()
client.force_login(User.objects.get(email="demo@waportal.example"))
cookie = [settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value]
print(json.dumps({{"devices": ids, "echo": sandbox.peer_phones("echo")[0], "cookie": cookie}}))
"""


class Minute:
    """What one minute saw."""

    def __init__(self) -> None:
        self.sends: list[float] = []
        self.errors: dict[str, int] = {}
        self.webhooks: list[float] = []
        self.pings: list[float] = []


class Soak:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.minute = Minute()
        self.stop = threading.Event()
        self.ws_dropped = 0
        self.ws_frames = 0
        self.status_5xx = 0

    def take_minute(self) -> Minute:
        with self.lock:
            minute, self.minute = self.minute, Minute()
            return minute

    # The webhook receiver: answers 200, notes how long each event took to arrive.
    def start_receiver(self) -> str:
        soak = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                stamp = json.loads(body)["timestamp"].replace("Z", "+00:00")
                delay = time.time() - datetime.fromisoformat(stamp).timestamp()
                with soak.lock:
                    soak.minute.webhooks.append(delay)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/hook"

    def send_loop(self, base: str, key: str, devices: list[int], echo: str, rate: float) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            n = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                device = devices[n % len(devices)]
                t0 = time.monotonic()
                try:
                    answer = client.post(
                        "/send/message",
                        json={"phone": echo, "message": f"soak {n}"},
                        headers={"X-Device-Id": str(device)},
                    )
                    outcome = str(answer.status_code)
                    if answer.status_code == 200:
                        outcome = answer.json()["results"].get("status", "200")
                    self.status_5xx += answer.status_code >= 500
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self.lock:
                    self.minute.sends.append(time.monotonic() - t0)
                    if outcome != "sent":
                        self.minute.errors[outcome] = self.minute.errors.get(outcome, 0) + 1
                n += 1
                next_at += 1 / rate
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    def socket_loop(self, port: int, cookie: list[str]) -> None:
        """A minimal RFC 6455 client (what the dashboard's htmx ws extension does): upgrade, read, ping."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/live/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie[0]}={cookie[1]}\r\n\r\n"
            ).encode()
        )
        reader = sock.makefile("rb")
        status = reader.readline()
        if b" 101 " not in status:
            raise SystemExit(f"the WebSocket was refused: {status!r}")
        while reader.readline() not in (b"\r\n", b""):
            pass
        sent_at: dict[str, float] = {}

        def ping_loop():
            n = 0
            while not self.stop.wait(1.0):
                n += 1
                payload = json.dumps({"action": "ping", "n": n}).encode()
                mask = os.urandom(4)
                frame = bytes([0x81, 0x80 | len(payload)]) + mask
                frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                sent_at["last"] = time.monotonic()
                try:
                    sock.sendall(frame)
                except OSError:
                    return

        threading.Thread(target=ping_loop, daemon=True).start()
        sock.settimeout(None)
        while not self.stop.is_set():
            head = reader.read(2)
            if len(head) < 2:
                break
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", reader.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", reader.read(8))[0]
            data = reader.read(length)
            opcode = head[0] & 0x0F
            if opcode == 8:
                break  # closed by the server
            self.ws_frames += 1
            if opcode == 1 and b"pong" in data and "last" in sent_at:
                with self.lock:
                    self.minute.pings.append(time.monotonic() - sent_at.pop("last"))
        if not self.stop.is_set():
            self.ws_dropped += 1


def sqlite_connections(pid: int) -> int:
    """Open connections of the process to its SQLite database (one descriptor each on the main file)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(".sqlite3")
        except OSError:
            pass
    return count


# How long both backlogs must stay at 0 to count as drained.
QUIET_SECONDS = 3.0


def backlog(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        outbox = conn.execute(
            "SELECT count(*) FROM messaging_message WHERE from_me AND status IN ('queued', 'sending')"
        ).fetchone()[0]
        hooks = conn.execute(
            "SELECT count(*) FROM messaging_webhookdelivery WHERE status IN ('pending', 'retrying', 'sending')"
        ).fetchone()[0]
    return outbox, hooks


def connected(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM messaging_device WHERE status = 'connected'").fetchone()[0]


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:7.1f}" if values else "      -"


def run(*, minutes: float, numbers: int = 20, rate: float = 5.0, drain_seconds: float = 90) -> dict:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # each minute's line as it comes, also into a pipe
    soak = Soak()
    url = soak.start_receiver()
    with EmbeddedServer(
        prefix="waportal-soak-",
        env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "LOG_LEVEL": "WARNING"},
        setup=[SETUP.format(numbers=numbers, url=url)],
    ) as server:
        info = json.loads(server.setup_output[0].strip().splitlines()[-1])
        db = server.data_dir / "waportal.sqlite3"
        deadline = time.monotonic() + 120
        while connected(db) < numbers:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {connected(db)} of {numbers} numbers connected within 120 s")
            time.sleep(0.5)
        threading.Thread(target=soak.socket_loop, args=(server.port, info["cookie"]), daemon=True).start()
        senders = [
            threading.Thread(
                target=soak.send_loop,
                args=(server.base, server.key, info["devices"][i::2], info["echo"], rate / 2),
                daemon=True,
            )
            for i in range(2)
        ]
        for sender in senders:
            sender.start()

        def sample() -> dict:
            pid = server.pid
            return {
                "rss": memory_mb(pid)["VmRSS"],
                "fds": open_fds(pid),
                "threads": threads(pid),
                "db": sqlite_connections(pid),
            }

        started = time.monotonic()
        # A long run's caches fill for many minutes (SQLite's page cache, 2 MB per connection and ten of them,
        # the live sockets' bounded queues): an hour's RSS rose 172 -> 205 MB in its first 19 minutes and then
        # stayed flat. So warm-up is a sixth of a run of 6 minutes or more, else a fifth, at most a minute.
        warmup = minutes * 60 / 6 if minutes >= 6 else min(60.0, minutes * 60 / 5)
        first = sample()
        print(f"soak: {numbers} numbers, {rate:g} sends/s, {minutes:g} min; load average {load_average()}")
        print(
            f"  start: RSS {first['rss']:.0f} MB, {first['fds']} fds, {first['threads']} threads, "
            f"{first['db']} SQLite connections"
        )
        print(
            "  min  sends  p99 send ms  webhooks  p99 webhook ms  p99 ping ms  RSS MB  fds  threads  db  load"
        )
        after_warmup = None
        warm_samples: list[dict] = []
        elapsed_minutes = 0
        end = started + minutes * 60
        while time.monotonic() < end:
            tick = min(end, started + (elapsed_minutes + 1) * 60)
            while time.monotonic() < tick:
                time.sleep(min(5.0, max(0.0, tick - time.monotonic())))
                if after_warmup is None:
                    warm_samples.append(sample())
                    if time.monotonic() - started >= warmup:
                        after_warmup = sample()
            elapsed_minutes += 1
            m = soak.take_minute()
            now = sample()
            print(
                f"  {elapsed_minutes:3d}  {len(m.sends):5d}  {ms(m.sends, 99)}      {len(m.webhooks):6d}  "
                f"{ms(m.webhooks, 99)}         {ms(m.pings, 99)}  {now['rss']:6.0f}  {now['fds']:3d}  "
                f"{now['threads']:7d}  {now['db']:2d}  {load_average()}"
                + (f"  not sent: {m.errors}" if m.errors else "")
            )
        soak.stop.set()
        for sender in senders:
            sender.join(40)
        # Drained: both backlogs at 0 and still at 0 QUIET_SECONDS later (the echo peers' answers to the last
        # sends, and their receipts, are still coming for a moment after the senders stop: each stores events).
        drained_in = None
        zero_since = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < drain_seconds:
            if backlog(db) != (0, 0):
                zero_since = None
            elif zero_since is None:
                zero_since = time.monotonic()
            elif time.monotonic() - zero_since >= QUIET_SECONDS:
                drained_in = zero_since - t0
                break
            time.sleep(0.5)
        end_sample = sample()
        left = backlog(db)
        log = server.log()

    base = after_warmup or first
    peak = {k: max(s[k] for s in [*warm_samples, base]) for k in ("fds", "threads", "db")}
    growth = (end_sample["rss"] - base["rss"]) / base["rss"]
    checks = {
        f"RSS after warm-up {base['rss']:.0f} MB -> end {end_sample['rss']:.0f} MB ({growth:+.1%}) < +10%": (
            growth < 0.10
        ),
        f"file descriptors {peak['fds']} -> {end_sample['fds']} (slack 8)": end_sample["fds"]
        <= peak["fds"] + 8,
        f"threads {peak['threads']} -> {end_sample['threads']} (slack 4)": end_sample["threads"]
        <= peak["threads"] + 4,
        f"SQLite connections {peak['db']} -> {end_sample['db']} (slack 2)": end_sample["db"]
        <= peak["db"] + 2,
        f"outbox backlog {left[0]}, webhook backlog {left[1]} at the end"
        + (f" (drained in {drained_in:.1f} s)" if drained_in is not None else ""): left == (0, 0),
        f"5xx answers: {soak.status_5xx}": soak.status_5xx == 0,
        f"WebSocket drops: {soak.ws_dropped} ({soak.ws_frames} frames received)": soak.ws_dropped == 0
        and soak.ws_frames > 0,
    }
    print(f"  checks (load average {load_average()}):")
    for text, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {text}")
    tracebacks = log.count("Traceback")
    if tracebacks:
        print(f"  the server logged {tracebacks} tracebacks: {server.log_path}")
    return {"ok": all(checks.values()), "checks": checks, "log_path": str(server.log_path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--numbers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="sends per second, all numbers together")
    args = parser.parse_args()
    result = run(minutes=args.minutes, numbers=args.numbers, rate=args.rate)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
