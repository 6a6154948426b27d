"""API benchmark: POST /send/message end to end against the same server's cheapest endpoint, in one run.

Runs the embedded default as `manage.py serve` does (one process: web, session workers, tasks; SQLite file;
the in-memory channel layer) on the sandbox backend, in a throw-away data directory, with the demo
organization (`manage.py demo`): one linked device. Then, over keep-alive HTTP connections from
`--concurrency` client threads:

- cheapest: GET /app/status (API-key check, one device read, no WhatsApp round trip);
- send: POST /send/message to a quiet simulated peer: stored in the outbox, sent by the session worker,
  acknowledged (the answer says `sent`; a `queued` answer is counted and reported, not hidden);
- floor: GET /__floor__, a fixed answer of a bare ASGI callable in front of Django, served by the same daphne
  process (routed only because this benchmark sets WAPORTAL_BENCH_FLOOR=1: see waportal/asgi.py): what the
  server stack and the client cost by themselves.

With `--stack production` the same three are asked of daphne with a `runsessions` process of its own, on
PostgreSQL + Redis (benchmarks/production_stack.py), as the README's production section runs them; the session
worker's CPU is then printed apart.

The three alternate in `--rounds` rounds (a machine whose speed drifts weighs on all alike). Prints requests per
second and p50/p99 latency of each, and the ratios of their throughputs (send / cheapest, target >= 0.7;
cheapest / floor, target >= 0.5), overall and by round:

    .venv/bin/python benchmarks/api_send_bench.py [--requests 400] [--concurrency 8] [--rounds 4] [--port 8765]
    .venv/bin/python benchmarks/api_send_bench.py --stack production \
        --database-url postgres://postgres@127.0.0.1:5432/NAME --redis-url redis://127.0.0.1:6379/N
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.harness import EmbeddedServer, cpu_seconds, load_average, percentile  # noqa: E402
from benchmarks.production_stack import Stack  # noqa: E402

QUIET_PEER = "from messaging.whatsapp import sandbox; print(sandbox.peer_phones('quiet')[0])"


def run_load(base: str, key: str, *, requests: int, concurrency: int, make_request) -> dict:
    """`requests` calls spread over `concurrency` threads, each with its own keep-alive connection."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))
    counter_lock = threading.Lock()

    def worker():
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            while True:
                with counter_lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                response = make_request(client, n)
                elapsed = time.perf_counter() - started
                try:
                    body = response.json()
                    outcome = f"{response.status_code} {body.get('code')}"
                    results = body.get("results")
                    if isinstance(results, dict) and "status" in results and "message_id" in results:
                        outcome += f" {results['status']}"
                except ValueError:
                    outcome = f"{response.status_code} (not JSON)"
                with lock:
                    latencies.append(elapsed)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return summary(latencies, wall, outcomes)


def summary(latencies: list[float], wall: float, outcomes: dict[str, int]) -> dict:
    return {
        "requests": len(latencies),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "outcomes": outcomes,
        "latencies": latencies,
    }


def combined(rounds: list[dict]) -> dict:
    """Several rounds of one endpoint as one: all requests over all the time they took."""
    outcomes: dict[str, int] = {}
    for r in rounds:
        for outcome, n in r["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    return summary([x for r in rounds for x in r["latencies"]], sum(r["seconds"] for r in rounds), outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="Alternate the two endpoints this many times (requests split among them), so that a machine "
        "whose speed drifts during the run weighs on both alike.",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--stack",
        choices=("embedded", "production"),
        default="embedded",
        help="embedded: one `manage.py serve` process (the default); production: daphne and a `runsessions` "
        "process of their own (needs --database-url and --redis-url), as the README's production section runs "
        "them: the web process's figures then leave out the WhatsApp side of a send, which the worker's CPU shows.",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="Run on this (empty, throw-away) PostgreSQL database instead of SQLite.",
    )
    parser.add_argument(
        "--redis-url", default="", help="Channel layer (and broker) on Redis; use a database of its own."
    )
    args = parser.parse_args()

    extra = {"WAPORTAL_BENCH_FLOOR": "1"}  # the embedded default, unless asked otherwise
    if args.stack == "production":
        if not (args.database_url and args.redis_url):
            parser.error("--stack production needs --database-url and --redis-url")
        mode = "daphne + a `runsessions` process, PostgreSQL + Redis"
        server = Stack(database_url=args.database_url, redis_url=args.redis_url, env=extra)
    else:
        if args.database_url:
            extra["DATABASE_URL"] = args.database_url
        if args.redis_url:
            extra["REDIS_URL"] = args.redis_url
        mode = "PostgreSQL" if args.database_url else "SQLite"
        mode += " + Redis" if args.redis_url else " + in-memory channel layer"
        mode = f"one `manage.py serve` process ({mode})"
        server = EmbeddedServer(prefix="waportal-api-bench-", port=args.port, env=extra, setup=[QUIET_PEER])
    with server:
        if args.stack == "production":
            quiet, log_path = server.peer, server.data_dir
            pids = {"web": server.processes["web"].pid, "worker": server.processes["sessions-0"].pid}
        else:
            quiet, log_path = server.setup_output[0].strip().splitlines()[-1], server.log_path
            pids = {"web": server.pid}
        key, base = server.key, server.base

        def cheapest(client, n):
            return client.get("/app/status")

        def send(client, n):
            return client.post("/send/message", json={"phone": quiet, "message": f"bench {n}"})

        def floor(client, n):
            return client.get("/__floor__")

        loads = (("floor", floor), ("cheapest", cheapest), ("send", send))
        load_before = load_average()
        for _, make in loads:  # warm-up
            run_load(base, key, requests=args.warmup, concurrency=args.concurrency, make_request=make)
        per_round = max(1, args.requests // args.rounds)
        rounds: dict[str, list[dict]] = {name: [] for name, _ in loads}
        cpu: dict[str, float] = {name: 0.0 for name, _ in loads}
        worker_cpu: dict[str, float] = {name: 0.0 for name, _ in loads}
        for _ in range(args.rounds):
            for name, make in loads:
                before = {role: cpu_seconds(pid) for role, pid in pids.items()}
                rounds[name].append(
                    run_load(base, key, requests=per_round, concurrency=args.concurrency, make_request=make)
                )
                cpu[name] += cpu_seconds(pids["web"]) - before["web"]
                if "worker" in pids:
                    worker_cpu[name] += cpu_seconds(pids["worker"]) - before["worker"]
        load_after = load_average()
        results = {name: combined(runs) for name, runs in rounds.items()}
        round_ratios = [s["rps"] / c["rps"] for c, s in zip(rounds["cheapest"], rounds["send"], strict=True)]
        floor_ratios = [c["rps"] / f["rps"] for f, c in zip(rounds["floor"], rounds["cheapest"], strict=True)]

    print(
        f"API benchmark: {per_round * args.rounds} requests each in {args.rounds} alternating rounds, "
        f"{args.concurrency} concurrent clients, "
        f"{mode}, sandbox backend"
    )
    print(f"  load average (1/5/15 min) before: {load_before}, after: {load_after}")
    labels = {
        "floor": "GET /__floor__ (bare ASGI, same server)",
        "cheapest": "GET /app/status (cheapest)",
        "send": "POST /send/message (stored, sent, acknowledged)",
    }
    for name, r in results.items():
        print(
            f"  {labels[name]:<50} {r['rps']:8.1f} req/s   p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms"
            f"   server CPU {cpu[name] / r['requests'] * 1000:5.2f} ms/req   answers: {r['outcomes']}"
        )
    if "worker" in pids:
        print(
            "  the session worker's CPU (a process of its own) per request: "
            + ", ".join(
                f"{name} {worker_cpu[name] / results[name]['requests'] * 1000:.2f} ms" for name in results
            )
        )
    print(f"  server log: {log_path}")
    ratio = results["send"]["rps"] / results["cheapest"]["rps"]
    print(
        f"  send / cheapest throughput ratio: {ratio:.2f} (target >= 0.7: {'met' if ratio >= 0.7 else 'NOT met'});"
        f" by round: {', '.join(f'{r:.2f}' for r in round_ratios)}"
    )
    floor_ratio = results["cheapest"]["rps"] / results["floor"]["rps"]
    per_request = {name: cpu[name] / results[name]["requests"] for name in cpu}
    print(
        "  by server CPU per request (steadier on a busy machine): "
        f"send / cheapest {per_request['cheapest'] / per_request['send']:.2f}, "
        f"cheapest / floor {per_request['floor'] / per_request['cheapest']:.2f}"
    )
    print(
        f"  cheapest / floor throughput ratio: {floor_ratio:.2f} "
        f"(target >= 0.5: {'met' if floor_ratio >= 0.5 else 'NOT met'});"
        f" by round: {', '.join(f'{r:.2f}' for r in floor_ratios)}"
    )


if __name__ == "__main__":
    main()
