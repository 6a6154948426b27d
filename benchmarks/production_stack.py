"""The production processes for the fault benchmarks: daphne, `runsessions` and celery on PostgreSQL + Redis.

`Stack` recreates an empty PostgreSQL database, migrates it, makes the demo organization (one linked sandbox
device, an API key) and starts the processes (each in its own session, its log in a throw-away directory);
leaving the `with` block stops them. `OwnRedis` runs a redis-server of the benchmark's own on a port, so that a
benchmark may stop and start it without touching anyone else's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# The shared pieces (benchmarks/harness.py); re-exported: the fault benchmarks import them from here.
from benchmarks.harness import PYTHON, free_port, manage, recreate_database, stop_process_group  # noqa: E402

__all__ = ["OwnRedis", "Stack", "free_port", "recreate_database"]


class OwnRedis:
    """A redis-server of our own on `port` (no persistence), stopped and started at will."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            + ["--daemonize", "yes", "--pidfile", f"/tmp/waportal-bench-redis-{self.port}.pid"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not self.is_up():
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        deadline = time.monotonic() + 10
        while self.is_up() and time.monotonic() < deadline:
            time.sleep(0.05)

    def is_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Stack:
    """web (daphne), session worker(s) and optionally a celery worker on `database_url` and `redis_url`."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        workers: int = 1,
        celery_threads: int = 0,
        env: dict | None = None,
    ):
        self.database_url = database_url
        self.redis_url = redis_url
        self.workers = workers
        self.celery_threads = celery_threads
        self.data_dir = Path(tempfile.mkdtemp(prefix="waportal-fault-bench-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "WAPORTAL_DATA_DIR": str(self.data_dir),
            "WA_BACKEND": "sandbox",
            "WA_SANDBOX_DELAY": os.environ.get("WA_SANDBOX_DELAY", "0.2"),
            "DEBUG": "0",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "benchmark-only-not-secret",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.key = ""
        self.peer = ""

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.data_dir / f"{name}.log", "wb")  # noqa: SIM115 - open for the process's whole life
        self.processes[name] = subprocess.Popen(
            args, env=self.env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def __enter__(self) -> Stack:
        recreate_database(self.database_url)
        self.manage("migrate", "--noinput")
        demo = json.loads(self.manage("demo", "--json").strip().splitlines()[-1])
        self.key = demo["api_key"]
        self.peer = (
            self.manage(
                "shell",
                "-c",
                "from messaging.whatsapp import sandbox; print(sandbox.peer_phones('quiet')[0])",
            )
            .strip()
            .splitlines()[-1]
        )
        try:
            self._start(
                "web",
                [
                    PYTHON,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "waportal.asgi:application",
                ],
            )
            for n in range(self.workers):
                self._start(f"sessions-{n}", [PYTHON, str(BASE_DIR / "manage.py"), "runsessions"])
            if self.celery_threads:
                self._start(
                    "celery",
                    [PYTHON, "-m", "celery", "-A", "waportal", "worker", "--pool", "threads"]
                    + ["-c", str(self.celery_threads), "--loglevel", "WARNING"],
                )
            self.wait_connected()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_connected(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = httpx.get(
                    f"{self.base}/app/status", headers={"Authorization": f"Bearer {self.key}"}, timeout=5
                )
                if status.status_code == 200 and status.json()["results"]["is_connected"]:
                    return
            except httpx.HTTPError:
                pass
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SystemExit(
                    f"the demo device did not connect (stopped: {dead}); logs in {self.data_dir}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            stop_process_group(process)

    def log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")

    def query(self, sql: str, params=()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()
