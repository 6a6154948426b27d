"""Upload memory benchmark: the server's peak RSS while it takes and sends a large file through POST /send/file.

Runs the embedded default as `manage.py serve` does (one process; SQLite file; in-memory channel layer) on the
sandbox backend, in a throw-away data directory, with the demo organization (`manage.py demo`). Sends one small
file first (so that everything a send imports and caches is loaded), reads the server's peak RSS (VmHWM in
/proc/<pid>/status), then sends `--mb` MB (`--concurrent` of them at once) to a quiet simulated peer and reads
the peak again once the answers are in. The answer waits for the send (WA_SEND_WAIT_SECONDS is raised), so the
peak covers the upload, the storing and the sending:

    .venv/bin/python benchmarks/upload_memory_bench.py [--mb 100] [--concurrent 1] [--port 8765]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.harness import EmbeddedServer, memory_mb  # noqa: E402

QUIET_PEER = "from messaging.whatsapp import sandbox; print(sandbox.peer_phones('quiet')[0])"
MB = 1024 * 1024


def write_file(path: Path, size: int) -> None:
    """`size` bytes that start like a PDF (a document of a known type), written in 1 MB pieces."""
    piece = os.urandom(MB)
    with open(path, "wb") as fh:
        fh.write(b"%PDF-1.4\n")
        left = size - 9
        while left > 0:
            fh.write(piece[: min(left, MB)])
            left -= MB


def send_file(base: str, key: str, phone: str, path: Path) -> tuple[int, dict | str, float]:
    started = time.perf_counter()
    with (
        open(path, "rb") as fh,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600) as client,
    ):
        response = client.post(
            "/send/file",
            data={"phone": phone, "caption": "memory bench"},
            files={"file": (path.name, fh, "application/pdf")},
        )
    elapsed = time.perf_counter() - started
    try:
        return response.status_code, response.json(), elapsed
    except ValueError:
        return response.status_code, response.text[:300], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the file to send, in MB")
    parser.add_argument("--concurrent", type=int, default=1, help="how many such files are sent at once")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = EmbeddedServer(
        prefix="waportal-upload-bench-",
        port=args.port,
        # Answer once the file is sent: the peak covers the whole send.
        env={"WA_SANDBOX_DELAY": "0.2", "WA_SEND_WAIT_SECONDS": "300"},
        setup=[QUIET_PEER],
    )
    data_dir, log_path = server.data_dir, server.log_path
    small, big = Path(data_dir) / "small.pdf", Path(data_dir) / "big.pdf"
    write_file(small, 64 * 1024)
    write_file(big, args.mb * MB)
    try:
        server.__enter__()
        quiet = server.setup_output[0].strip().splitlines()[-1]
        key, base = server.key, server.base
        warm = send_file(base, key, quiet, small)
        if warm[0] != 200:
            raise SystemExit(f"the warm-up send failed: {warm[0]} {warm[1]}")
        before = memory_mb(server.pid)

        answers: list = [None] * args.concurrent

        def one(i: int) -> None:
            answers[i] = send_file(base, key, quiet, big)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = memory_mb(server.pid)
    finally:
        server.stop()
        for entry in Path(
            data_dir
        ).iterdir():  # the files, the stored copies and the database: GBs; keep the log
            if entry != log_path:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    print(
        f"Upload memory benchmark: {args.concurrent} x {args.mb} MB through POST /send/file, "
        "one `manage.py serve` process (SQLite + in-memory channel layer), sandbox backend"
    )
    for status, body, elapsed in answers:
        results = body.get("results") if isinstance(body, dict) else None
        outcome = results.get("status") if isinstance(results, dict) else body
        print(f"  answer: {status} {outcome} in {elapsed:.1f} s")
    print(f"  peak RSS before: {before['VmHWM']:.0f} MB (RSS {before['VmRSS']:.0f} MB)")
    print(f"  peak RSS after:  {after['VmHWM']:.0f} MB (RSS {after['VmRSS']:.0f} MB)")
    growth = after["VmHWM"] - before["VmHWM"]
    total = args.mb * args.concurrent
    print(f"  peak grew by {growth:.0f} MB for {total} MB sent: {growth / total:.2f}x the file size")
    print(f"  server log: {log_path}")


if __name__ == "__main__":
    main()
