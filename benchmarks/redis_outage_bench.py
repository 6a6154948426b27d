"""Fault run: sends through a Redis outage. Prints 5xx answers, lost and duplicated messages, recovery time.

The production processes (daphne, one `runsessions` worker; see production_stack.py) on a throw-away
PostgreSQL database and a redis-server of this benchmark's own (its own port: the shared one is never
touched). `--concurrency` clients send POST /send/message (each a text of its own) for `--before` seconds,
then Redis is stopped for `--outage` seconds, started again, and they go on for `--after` seconds. Then:

- 5xx: answers with a status of 500 or more (other answers are listed by status too);
- lost: sends answered 200 whose message is not `sent` (or further) `--settle` seconds after the load;
- duplicated: texts stored more than once (one request, one row);
- recovery: from Redis being back to the first WhatsApp command answered again (a probe sends one every
  0.25 s: the channel layer works again), to the first send answered `sent` again and to the last message
  answered `queued` being sent (the backlog of the outage: the worker sends it while Redis is down too);
- commands: the probe's answers while Redis was down (503 with Retry-After expected).

    .venv/bin/python benchmarks/redis_outage_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/waportal_faults_gateway [--redis-port 6390]
"""

from __future__ import annotations

import argparse
import collections
import threading
import time

import httpx
from production_stack import OwnRedis, Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of the benchmark's own")
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--before", type=float, default=10)
    parser.add_argument("--outage", type=float, default=30)
    parser.add_argument("--after", type=float, default=20)
    parser.add_argument("--settle", type=float, default=60)
    args = parser.parse_args()

    redis = OwnRedis(args.redis_port)
    if redis.is_up():
        raise SystemExit(f"something already listens on port {args.redis_port}: choose another --redis-port")
    redis.start()
    answers: list[tuple[float, int, str, str, str]] = []  # (at, status, text, message_id, result status)
    probes: list[tuple[float, int, str]] = []  # (at, status, Retry-After)
    lock = threading.Lock()
    counter = iter(range(10**9))
    try:
        with Stack(database_url=args.database_url, redis_url=redis.url) as stack:
            stop_at = time.time() + args.before + args.outage + args.after

            def client():
                with httpx.Client(
                    base_url=stack.base, headers={"Authorization": f"Bearer {stack.key}"}, timeout=60
                ) as http:
                    while time.time() < stop_at:
                        with lock:
                            text = f"outage {next(counter)}"
                        try:
                            r = http.post("/send/message", json={"phone": stack.peer, "message": text})
                            body = (
                                r.json()
                                if r.headers.get("content-type", "").startswith("application/json")
                                else {}
                            )
                            results = body.get("results") or {}
                            status, mid, state = (
                                r.status_code,
                                results.get("message_id", ""),
                                results.get("status", ""),
                            )
                        except httpx.HTTPError as exc:
                            status, mid, state = 0, "", type(exc).__name__
                        with lock:
                            answers.append((time.time(), status, text, mid, state))

            def prober():  # a WhatsApp command (through the channel layer to the worker) every 0.25 s
                with httpx.Client(
                    base_url=stack.base, headers={"Authorization": f"Bearer {stack.key}"}, timeout=60
                ) as http:
                    while time.time() < stop_at:
                        try:
                            r = http.get("/user/my/privacy")
                            status, retry_after = r.status_code, r.headers.get("Retry-After", "")
                        except httpx.HTTPError:
                            status, retry_after = 0, ""
                        probes.append((time.time(), status, retry_after))
                        time.sleep(0.25)

            threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
            threads.append(threading.Thread(target=prober))
            for t in threads:
                t.start()
            time.sleep(args.before)
            redis.stop()
            down_at = time.time()
            time.sleep(args.outage)
            redis.start()
            up_at = time.time()
            for t in threads:
                t.join()

            accepted = {text: mid for _, status, text, mid, _ in answers if status == 200}
            deadline = time.time() + args.settle
            while time.time() < deadline:
                pending = stack.query(
                    "SELECT count(*) FROM messaging_message WHERE from_me AND status IN ('queued', 'sending')"
                )[0][0]
                if not pending:
                    break
                time.sleep(0.25)
            rows = stack.query(
                "SELECT text, wa_id, status, extract(epoch FROM sent_at) FROM messaging_message WHERE from_me"
            )
            worker_log = stack.log("sessions-0")
            web_log = stack.log("web")
    finally:
        redis.stop()

    by_text = collections.defaultdict(list)
    for text, wa_id, status, sent_at in rows:
        by_text[text].append((wa_id, status, sent_at))
    done = {"sent", "delivered", "read", "played"}
    lost = [
        t for t, mid in accepted.items() if not any(w == mid and s in done for w, s, _ in by_text.get(t, []))
    ]
    duplicated = [t for t, found in by_text.items() if len(found) > 1]
    statuses = collections.Counter(status for _, status, *_ in answers)
    during = collections.Counter(status for at, status, *_ in answers if down_at <= at < up_at)
    five = sum(n for status, n in statuses.items() if status >= 500 or status == 0)
    first_sent = next((at for at, status, _, _, state in answers if at > up_at and state == "sent"), None)
    # The messages answered `queued` while Redis was down (or just after): when the last of them went out.
    queued = {text for at, status, text, _, state in answers if status == 200 and state == "queued"}
    queued_sent = [float(at) for text in queued for _, _, at in by_text.get(text, []) if at]
    drained_at = max(queued_sent) if queued_sent else None
    stored_despite_error = [t for at, status, t, *_ in answers if status != 200 and t in by_text]
    print(
        f"Redis outage fault run: {args.concurrency} clients, {args.before:g} s + {args.outage:g} s Redis down"
        f" + {args.after:g} s; daphne + 1 runsessions worker on PostgreSQL, sandbox backend"
    )
    print(f"  sends: {len(answers)}   answers by status: {dict(sorted(statuses.items()))} (0: no answer)")
    print(f"  while Redis was down: {dict(sorted(during.items()))}")
    print(f"  5xx (or no answer): {five}")
    print(f"  accepted (200): {len(accepted)}   lost: {len(lost)}   duplicated: {len(duplicated)}")
    print(
        "  recovery after Redis came back: first `sent` answer "
        + (f"{first_sent - up_at:.1f} s" if first_sent else "never")
        + ", last message answered `queued` sent "
        + (f"{drained_at - up_at:+.1f} s" if drained_at else "(none queued)")
    )
    probes_during = collections.Counter(
        f"{status}" + (" with Retry-After" if retry else "")
        for at, status, retry in probes
        if down_at <= at < up_at
    )
    probe_back = next((at for at, status, _ in probes if at > up_at and status == 200), None)
    print(
        f"  commands (GET /user/my/privacy every 0.25 s): while Redis was down {dict(probes_during)}; "
        f"5xx other than 503: {sum(1 for _, s, _ in probes if s >= 500 and s != 503 or s == 0)}; "
        "first 200 after Redis came back: " + (f"{probe_back - up_at:.1f} s" if probe_back else "never")
    )
    print(f"  answered an error although stored (a retry would send it twice): {len(stored_despite_error)}")
    print(
        f"  tracebacks in logs: web {web_log.count('Traceback')}, session worker {worker_log.count('Traceback')}"
    )
    print(f"  logs: {stack.data_dir}")


if __name__ == "__main__":
    main()
