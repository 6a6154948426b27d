"""PostgreSQL connections under load: the peak the production processes hold, and the 5xx answers.

The production processes (daphne, one `runsessions` worker, a celery worker with 2 threads; see
production_stack.py) on a throw-away PostgreSQL database and a redis-server of the benchmark's own.
`--concurrency` clients send `--requests` POST /send/message; meanwhile pg_stat_activity is sampled every 50 ms
for connections to the database (the sampler's own excepted). Prints the peak, the answers by status and
the number of 5xx. Target: at most 25 connections in all, 0 answers 5xx.

    .venv/bin/python benchmarks/pg_connections_bench.py \
        --database-url postgres://postgres@127.0.0.1:5432/waportal_faults_gateway [--redis-port 6391]
        [--pool-size 8]  [--pool-size 0 --conn-max-age 60: as before the pool]
"""

from __future__ import annotations

import argparse
import collections
import threading
import time

import httpx
import psycopg
from production_stack import OwnRedis, Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database of the benchmark's own")
    parser.add_argument("--redis-port", type=int, default=6391)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=8, help="DB_POOL_SIZE of every process (0: no pool)")
    parser.add_argument("--conn-max-age", type=float, default=0, help="DB_CONN_MAX_AGE (without the pool)")
    args = parser.parse_args()

    redis = OwnRedis(args.redis_port)
    if redis.is_up():
        raise SystemExit(f"something already listens on port {args.redis_port}: choose another --redis-port")
    redis.start()
    env = {"DB_POOL_SIZE": str(args.pool_size), "DB_CONN_MAX_AGE": str(args.conn_max_age)}
    answers: collections.Counter = collections.Counter()
    samples: list[int] = []
    try:
        with Stack(database_url=args.database_url, redis_url=redis.url, celery_threads=2, env=env) as stack:
            name = stack.database_url.rsplit("/", 1)[-1]
            sampling = threading.Event()

            def sample():
                with psycopg.connect(stack.database_url, autocommit=True) as conn:
                    while not sampling.is_set():
                        samples.append(
                            conn.execute(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                [name],
                            ).fetchone()[0]
                        )
                        time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            counter = iter(range(args.requests))
            lock = threading.Lock()
            started = time.monotonic()

            def client():
                with httpx.Client(
                    base_url=stack.base, headers={"Authorization": f"Bearer {stack.key}"}, timeout=60
                ) as http:
                    while True:
                        with lock:
                            n = next(counter, None)
                        if n is None:
                            return
                        try:
                            status = http.post(
                                "/send/message", json={"phone": stack.peer, "message": f"pg {n}"}
                            ).status_code
                        except httpx.HTTPError:
                            status = 0
                        with lock:
                            answers[status] += 1

            threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - started
            time.sleep(1)  # (and a second after: what the processes keep once the load is gone)
            sampling.set()
            sampler.join()
            idle_after = samples[-1] if samples else 0
    finally:
        redis.stop()

    mode = (
        f"pool of {args.pool_size} per process"
        if args.pool_size
        else f"no pool, CONN_MAX_AGE={args.conn_max_age:g}"
    )
    five = sum(n for status, n in answers.items() if status >= 500 or status == 0)
    print(
        f"PostgreSQL connections: {args.requests} sends at concurrency {args.concurrency} against daphne + 1 "
        f"runsessions worker + celery (2 threads), {mode}"
    )
    print(
        f"  answers by status: {dict(sorted(answers.items()))} (0: no answer)   {args.requests / wall:.1f} req/s"
    )
    print(f"  peak connections to the database: {max(samples, default=0)}   one second after: {idle_after}")
    print(f"  5xx (or no answer): {five}")
    print(f"  logs: {stack.data_dir}")


if __name__ == "__main__":
    main()
