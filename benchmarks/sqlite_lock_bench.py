"""The embedded default's SQLite write lock alone: writer threads beside CPU burners; throughput, waits, errors.

`--threads` threads write to a throw-away file through waportal.sqlite for `--seconds` while `--burners`
processes keep the CPUs busy: half their writes are transactions (an INSERT ... RETURNING, some work, an
UPDATE), half single statements outside a transaction. Prints how many writes were made, the longest and
the 99th-percentile wait for a write to start, and how many failed ("database is locked"). With
`--busy-timeout` small, a writer that waited at SQLite's own door instead of the lock fails.

    .venv/bin/python benchmarks/sqlite_lock_bench.py [--threads 12] [--burners 6] [--seconds 20] [--busy-timeout 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--burners", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument(
        "--busy-timeout", type=float, default=1.0, help="SQLite's own busy timeout (seconds)."
    )
    args = parser.parse_args()

    import django
    from django.conf import settings

    path = Path(tempfile.mkdtemp(prefix="waportal-lock-bench-")) / "lock.sqlite3"
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "waportal.sqlite",
                "NAME": str(path),
                "OPTIONS": {
                    "timeout": args.busy_timeout,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
        USE_TZ=True,
    )
    django.setup()
    from django.db import OperationalError, connection, connections, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    connections.close_all()

    waits: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + args.seconds

    def writer(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            i += 1
            asked = time.monotonic()
            try:
                if i % 2:
                    with transaction.atomic():
                        waits.append(time.monotonic() - asked)
                        with connection.cursor() as cursor:
                            cursor.execute("INSERT INTO t (v) VALUES (%s) RETURNING id", [f"{n}-{i}"])
                            (row_id,) = cursor.fetchone()
                            sum(range(20000))  # some work while the transaction is open
                            cursor.execute("UPDATE t SET v = v || 'x' WHERE id = %s", [row_id])
                else:
                    with connection.cursor() as cursor:
                        cursor.execute("INSERT INTO t (v) VALUES (%s) RETURNING id", [f"{n}-{i}"])
                        cursor.fetchone()
                    waits.append(time.monotonic() - asked)
            except OperationalError as exc:
                errors.append(str(exc))
        connections.close_all()

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    try:
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for burner in burners:
            burner.kill()
    waits.sort()
    print(
        f"SQLite write lock: {args.threads} writer threads beside {args.burners} CPU burners for {args.seconds:g} s "
        f"(busy timeout {args.busy_timeout:g} s)"
    )
    print(
        f"  writes: {len(waits)} ({len(waits) / args.seconds:.0f}/s); wait for a write: max {waits[-1]:.2f} s, "
        f"p99 {waits[int(len(waits) * 0.99)]:.3f} s; failed: {len(errors)} {sorted(set(errors))}"
    )


if __name__ == "__main__":
    main()
