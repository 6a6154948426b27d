"""How session workers share numbers: two `runsessions` processes, a kill and a restart, on PostgreSQL + Redis.

Prints, for 20 linked numbers on the sandbox backend: how the numbers are spread after each step, and how long
each step took to settle (a worker joining, one SIGKILLed, the killed one started again).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/waportal_bench REDIS_URL=redis://127.0.0.1:6379/15 \\
        WA_LEASE_SECONDS=3 .venv/bin/python benchmarks/balance_bench.py [--devices 20]
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")
os.environ.setdefault("WA_BACKEND", "sandbox")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("WA_LEASE_SECONDS", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL: several worker processes need them")

    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Organization
    from messaging.models import Device, DeviceLease
    from messaging.models.device import SessionWorker

    call_command("migrate", verbosity=0)
    Device.objects.filter(organization__slug="balance-bench").delete()
    SessionWorker.objects.all().delete()
    org, _ = Organization.objects.get_or_create(slug="balance-bench", defaults={"name": "Balance bench"})
    Device.objects.bulk_create(
        Device(organization=org, name=f"Bench {n}", wanted=True, jid=f"9055590{n:05d}@s.whatsapp.net")
        for n in range(args.devices)
    )
    ids = set(Device.objects.filter(organization=org).values_list("id", flat=True))

    def spread() -> list[int]:
        from django.utils import timezone

        live = DeviceLease.objects.filter(device_id__in=ids, expires_at__gt=timezone.now())
        counts: dict[str, int] = {}
        for worker in live.values_list("worker_id", flat=True):
            counts[worker] = counts.get(worker, 0) + 1
        return sorted(counts.values(), reverse=True)

    def settle(goal, what: str) -> None:
        start = time.monotonic()
        while time.monotonic() - start < args.timeout:
            now = spread()
            if goal(now):
                print(f"{what:<40} {'/'.join(map(str, now)):>8}  in {time.monotonic() - start:5.2f} s")
                return
            time.sleep(0.05)
        print(f"{what:<40} {'/'.join(map(str, spread())):>8}  NOT settled in {args.timeout:g} s")

    def worker(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runsessions", "--worker-id", name],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    half = -(-args.devices // 2)
    balanced = lambda s: sum(s) == args.devices and len(s) == 2 and s[0] <= half  # noqa: E731
    procs = []
    try:
        procs.append(worker("bench-a"))
        settle(lambda s: s == [args.devices], "one worker takes every number")
        procs.append(worker("bench-b"))
        settle(balanced, "a second worker joins")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        settle(lambda s: s == [args.devices], "the first is SIGKILLed; survivor holds")
        procs.append(worker("bench-a2"))
        settle(balanced, "a new worker starts again")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        Device.objects.filter(organization=org).delete()
        org.delete()


if __name__ == "__main__":
    main()
