"""ASGI entry point: Django for HTTP, the MCP server at /mcp, Channels consumers for WebSockets."""

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")

import django  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import FileResponse  # noqa: E402
from django.urls import get_resolver, set_script_prefix  # noqa: E402


class SyncStackHandler(ASGIHandler):
    """Django's ASGI handler with the middleware, the view and its middleware hooks run as one synchronous call,
    in the request's thread.

    Django's own runs the middleware in their async mode under ASGI: our sync-only ones in a thread, then back
    on the event loop for the async-capable one below them (axes), then to the thread again for each
    process_view and for the view: about ten thread hops per request, which cost an API request more than its
    own work (GET /app/status: 1.9 ms of CPU through the test client, 4.7 ms through daphne). Here it is one
    hop. An async view would still work (Django runs it with async_to_sync), as would streamed answers, which
    the ASGI handler sends as before."""

    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)

    async def handle(self, scope, receive, send):
        """Django's `handle`, with the request's synchronous work in one trip to its thread.

        Django's goes to the thread three times: for the request_started signal's receivers, for the middleware
        and the view, and for the response's close() (the request_finished receivers), each trip a handoff
        between the event loop and the thread and back. Here the signal, the request, the middleware, the view
        and, for an answer already whole, its close() run in one call; then the event loop sends it. A streamed
        answer is closed once it is sent, as before. A client that leaves mid-request ends the wait, as in
        Django's, not the thread's work (request_finished then runs once that work is done, in its thread)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._listen_for_disconnect(receive))
                        response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
                        await self.send_response(response, send)
                        raise _RequestProcessed
                except* (_RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as group:  # (as Django's: one error is raised as itself)
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            if response is None:  # the client left first: the request still ends
                await sync_to_async(signals.request_finished.send, thread_sensitive=True)(
                    sender=self.__class__
                )
            elif response.streaming:
                await sync_to_async(response.close, thread_sensitive=True)()

    async def _listen_for_disconnect(self, receive):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")

    def _respond(self, scope, body_file):
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size  # (the ASGI server chunks what it sends)
        if not response.streaming:
            response.close()  # its content is whole: request_finished's receivers run here, in this trip
        return response


class _RequestProcessed(Exception):
    """Ends the TaskGroup (and its wait for a disconnect) once the answer is sent."""


django.setup(set_prefix=False)  # (what get_asgi_application does before making Django's handler)
django_asgi_app = SyncStackHandler()

from asgiref.sync import ThreadSensitiveContext  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from messaging.mcp.server import McpApp  # noqa: E402
from waportal import daphne_uploads  # noqa: E402
from waportal.gc_freeze import freeze_startup_objects  # noqa: E402
from waportal.routing import websocket_urlpatterns  # noqa: E402

daphne_uploads.install()
mcp_app = McpApp()


class RequestThread(ThreadPoolExecutor):
    """One thread for one request at a time, which knows whether it still has work (see RequestThreads)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="waportal-request")
        self._busy = 0
        self._busy_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._busy_lock:
            self._busy += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._busy_lock:
            self._busy -= 1

    @property
    def idle(self) -> bool:
        return not self._busy


class RequestThreads:
    """The threads Django runs requests' sync code in (middleware, views), kept from one request to the next.

    Django gives each request a ThreadSensitiveContext of its own, and asgiref a new single-thread executor for
    it: every request started a thread for its code and another to join that one when it was done (two thread
    starts and a new database connection per request, more than the whole of a bare ASGI answer). Here each
    request still has a thread to itself for as long as it runs (what thread-sensitive code needs), taken from
    this pool. A thread still running what its request gave it (a client gone mid-send) is not kept: it ends
    once that is done, and never makes another request wait. Only the event loop touches the pool."""

    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        self._idle: list[RequestThread] = []

    def take(self) -> RequestThread:
        try:
            return self._idle.pop()
        except IndexError:
            return RequestThread()

    def give_back(self, executor: RequestThread) -> None:
        if executor.idle and len(self._idle) < self.keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


request_threads = RequestThreads()


async def django_in_request_thread(scope, receive, send):
    executor = request_threads.take()
    try:
        # The outermost ThreadSensitiveContext decides (Django's own, inside, then leaves it as it is).
        async with ThreadSensitiveContext(executor=executor):
            await django_asgi_app(scope, receive, send)
    finally:
        request_threads.give_back(executor)


async def mcp_or_django(scope, receive, send):
    """/mcp (and /mcp/) to the MCP server; everything else to Django."""
    if scope["path"].rstrip("/") == "/mcp":
        await mcp_app(scope, receive, send)
    else:
        await django_in_request_thread(scope, receive, send)


def with_floor(app):
    """For benchmarks/api_send_bench.py only: GET /__floor__ answered before Django, by the same server, so
    that the cost of our cheapest endpoint over the server's own can be read. Routed only when the benchmark
    sets WAPORTAL_BENCH_FLOOR=1."""
    body = b'{"code": "SUCCESS", "message": "floor", "results": null}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def floor(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/__floor__":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return floor


http_app = with_floor(mcp_or_django) if os.environ.get("WAPORTAL_BENCH_FLOOR") == "1" else mcp_or_django

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

get_resolver().url_patterns  # noqa: B018 (the URLconf, and with it every view and API module, loaded now)
freeze_startup_objects()  # everything loaded so far is loaded for good: see gc_freeze.py
