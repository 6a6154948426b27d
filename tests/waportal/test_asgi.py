"""The ASGI entry point: the API benchmark's floor is routed only when the benchmark asks for it."""

import asyncio

from waportal import asgi


def test_the_floor_is_not_routed_in_a_normal_start():
    assert asgi.http_app is asgi.mcp_or_django


def _call(app, path):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": "GET"}, receive, send))
    return sent


def test_the_floor_answers_its_path_itself_and_passes_every_other_on():
    seen = []

    async def django(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})

    app = asgi.with_floor(django)
    floor = _call(app, "/__floor__")
    assert floor[0]["status"] == 200 and b"SUCCESS" in floor[1]["body"]
    assert _call(app, "/app/status")[0]["status"] == 404
    assert seen == ["/app/status"]


def test_a_request_thread_is_kept_for_the_next_request_only_if_it_has_finished_what_it_was_given():
    import threading

    threads = asgi.RequestThreads(keep=4)
    first = threads.take()
    first.submit(int).result(timeout=10)
    threads.give_back(first)
    assert threads.take() is first  # idle: the next request gets it

    done = threading.Event()
    first.submit(done.wait)  # its request was answered (or its client left) while its code still runs
    threads.give_back(first)
    second = threads.take()
    assert second is not first  # not queued behind the unfinished work
    done.set()
    first.shutdown(wait=True)  # it ends once that work is done (give_back shut it down)
    second.shutdown()


async def _django_get(path):
    sent = []
    received = []

    async def receive():
        if not received:
            received.append(1)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("localhost", 80),
    }

    await asgi.mcp_or_django(scope, receive, send)
    return sent


def test_django_answers_with_its_middleware_and_view_in_one_kept_thread(settings):
    """Each request's sync code (the middleware, the view, the request signals) runs in one thread, and that
    thread serves the next request (Django alone would start two threads per request)."""
    import threading

    from django.core.signals import request_finished, request_started
    from django.http import HttpResponse
    from django.urls import path

    seen = []

    def view(request):
        seen.append(("view", threading.get_ident()))
        return HttpResponse("ok")

    def started(**kwargs):
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("finished", threading.get_ident()))

    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [path("probe", view)]})
    settings.ALLOWED_HOSTS = ["localhost"]
    request_started.connect(started)
    request_finished.connect(finished)

    async def two_requests():
        return await _django_get("/probe"), await _django_get("/probe")

    try:
        first, second = asyncio.run(two_requests())
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert first[0]["status"] == 200 and second[0]["status"] == 200
    assert [what for what, _ in seen] == ["started", "view", "finished"] * 2
    assert len({thread for _, thread in seen}) == 1


def _probe(settings, view):
    from django.urls import path

    settings.ROOT_URLCONF = type("urls", (), {"urlpatterns": [path("probe", view)]})
    settings.ALLOWED_HOSTS = ["localhost"]


def test_a_whole_answer_takes_one_trip_to_the_request_thread(settings, monkeypatch):
    """The request_started receivers, the middleware and view, and the answer's close() (request_finished) are
    one call in the request's thread, not three handoffs between it and the event loop."""
    from django.core.signals import request_finished
    from django.http import HttpResponse

    trips, seen = [], []
    submit = asgi.RequestThread.submit

    def counting_submit(self, fn, /, *args, **kwargs):
        trips.append(fn)
        return submit(self, fn, *args, **kwargs)

    def finished(**kwargs):
        seen.append("finished")

    monkeypatch.setattr(asgi.RequestThread, "submit", counting_submit)
    _probe(settings, lambda request: HttpResponse("ok"))
    request_finished.connect(finished)
    try:
        sent = asyncio.run(_django_get("/probe"))
    finally:
        request_finished.disconnect(finished)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"
    assert len(trips) == 1 and seen == ["finished"]


def test_a_streamed_answer_is_closed_once_it_is_sent(settings):
    from django.core.signals import request_finished
    from django.http import StreamingHttpResponse

    order = []

    async def chunks():
        order.append("streamed")
        yield b"one "
        yield b"two"

    def finished(**kwargs):
        order.append("finished")

    _probe(settings, lambda request: StreamingHttpResponse(chunks()))
    request_finished.connect(finished)
    try:
        sent = asyncio.run(_django_get("/probe"))
    finally:
        request_finished.disconnect(finished)
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"one two"
    assert order == ["streamed", "finished"]


def test_the_served_process_leaves_its_start_up_objects_out_of_full_collections():
    """Loading the ASGI application loads every view and API module, then freezes what is loaded (gc_freeze):
    a full collection in a request no longer walks the ~200,000 objects of Django and the apps."""
    import os
    import subprocess
    import sys

    probe = (
        "import gc, sys; import waportal.asgi; "
        "print(gc.get_freeze_count(), 'messaging.api.send' in sys.modules, 'messaging.views.inbox' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=os.environ, check=True
    ).stdout.split()
    assert int(out[-3]) > 50_000 and out[-2:] == ["True", "True"]
