"""A real HTTP server on 127.0.0.1 for webhook and fetch tests: scripted answers, recorded requests."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    chunked: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    status: int = 0  # what it was answered


class Receiver:
    """Answers requests from a script (then `default`), records each one; `wait_for(n)` blocks until n arrived."""

    def __init__(self) -> None:
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.routes: dict[str, Answer] = {}
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._cond:
                    if self.path in receiver.routes:
                        answer = receiver.routes[self.path]
                    elif receiver.script:
                        answer = receiver.script.popleft()
                    else:
                        answer = receiver.default
                    receiver.requests.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            answer.status,
                        )
                    )
                    receiver._cond.notify_all()
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if answer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(answer.body), 1024):
                        piece = answer.body[start : start + 1024]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)

            do_GET = do_POST = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hangs up mid-answer (a size cap, a timeout) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="test-receiver", daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, *answers: Answer) -> None:
        with self._cond:
            self.script.extend(answers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)} in {timeout}s")
            return list(self.requests)

    def wait_until(self, predicate, timeout: float = 10.0, what: str = "requests") -> list[Received]:
        """Until `predicate(requests so far)` holds (checked on each request)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.requests), timeout=timeout):
                raise AssertionError(f"waited {timeout}s for {what}; got {len(self.requests)} requests")
            return list(self.requests)
