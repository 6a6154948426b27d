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
