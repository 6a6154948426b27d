"""What the benchmarks share: ports, `manage.py` in a child process, the embedded server with the demo
organization, percentiles, and what /proc says about a process (CPU, memory, file descriptors, threads).

`EmbeddedServer` runs `manage.py serve` (the embedded default, or PostgreSQL/Redis when the environment names
them) on the sandbox backend in a throw-away data directory, with the demo organization (one linked device,
an API key); leaving the `with` block stops it (its log stays in the data directory). The production processes
(daphne, runsessions, celery) are `benchmarks.production_stack.Stack`, built on the same pieces.
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
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    """Run `manage.py args` with `env`; its standard output (a failure ends the benchmark, with its output)."""
    result = subprocess.run(
        [PYTHON, str(BASE_DIR / "manage.py"), *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_average() -> str:
    """The machine's 1/5/15-minute load average, printed beside every figure (it is a shared machine)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: per request, a figure that other load on the
    machine does not inflate the way it does wall-clock throughput."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS) ... of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("Vm") and rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def recreate_database(url: str) -> None:
    """Drop and create the PostgreSQL database `url` names (a benchmark's own: everything in it is lost)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def embedded_env(data_dir: str | Path, **extra: str) -> dict:
    """The environment of an embedded-default child process on the sandbox backend (DATABASE_URL/REDIS_URL
    dropped unless given in `extra`)."""
    env = {
        **os.environ,
        "WAPORTAL_DATA_DIR": str(data_dir),
        "WA_BACKEND": "sandbox",
        "WA_SANDBOX_DELAY": os.environ.get("WA_SANDBOX_DELAY", "0.2"),
        "DEBUG": "0",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env.update(extra)
    if env.get("REDIS_URL") or env.get("DATABASE_URL"):
        env.setdefault("SECRET_KEY", "benchmark-only-not-secret")
        env.setdefault("SECURE_SSL_REDIRECT", "false")
    return env


def wait_connected(
    base: str, key: str, *, process=None, timeout: float = 120, what: str = "the server", device_id=None
):
    """Until GET /app/status says the (demo) device is connected (bounded; a dead `process` ends it early)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    if device_id is not None:
        headers["X-Device-Id"] = str(device_id)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = httpx.get(f"{base}/app/status", headers=headers, timeout=5)
            if status.status_code == 200 and status.json()["results"]["is_connected"]:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            raise SystemExit(f"{what} did not come up with the demo device connected within {timeout:g} s")
        time.sleep(0.25)


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process's session (started with start_new_session), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


SEPARATOR = "--- waportal bench setup ---"


class EmbeddedServer:
    """`manage.py serve` on a free port with the demo organization; `key` is its API key, `base` its URL."""

    def __init__(self, *, prefix: str = "waportal-bench-", port: int = 0, env: dict | None = None, setup=()):
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = embedded_env(self.data_dir, **(env or {}))
        self.log_path = self.data_dir / "server.log"
        self.setup = setup  # shell snippets run (manage.py shell -c) before the server starts
        self.setup_output: list[str] = []
        self.process: subprocess.Popen | None = None
        self.key = ""

    def manage(self, *args: str, timeout: float = 300) -> str:
        return manage(self.env, *args, timeout=timeout)

    def __enter__(self) -> EmbeddedServer:
        self.manage("migrate", "--noinput")
        # The demo and the setup snippets in one process (each Django start-up costs seconds on a busy machine).
        script = (
            "from messaging.management.commands.demo import _json, build_demo\nprint(_json(build_demo()))\n"
        )
        for snippet in self.setup:
            script += f"print({SEPARATOR!r})\n" + snippet + "\n"
        demo, *outputs = self.manage("shell", "-c", script).split(SEPARATOR + "\n")
        self.demo = json.loads(demo.strip().splitlines()[-1])
        self.key = self.demo["api_key"]
        self.setup_output = outputs
        self.start()
        return self

    def start(self, *, timeout: float = 120) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - open for the server's whole life
        self.process = subprocess.Popen(
            [PYTHON, str(BASE_DIR / "manage.py"), "serve", "--port", str(self.port)],
            env=self.env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_connected(
                self.base, self.key, process=self.process, timeout=timeout, device_id=self.demo["device_id"]
            )
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
