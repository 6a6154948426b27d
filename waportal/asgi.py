"""ASGI entry point: Django for HTTP, the MCP server at /mcp, Channels consumers for WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from messaging.mcp.server import McpApp  # noqa: E402
from waportal import daphne_uploads  # noqa: E402
from waportal.routing import websocket_urlpatterns  # noqa: E402

daphne_uploads.install()
mcp_app = McpApp()


async def mcp_or_django(scope, receive, send):
    """/mcp (and /mcp/) to the MCP server; everything else to Django."""
    if scope["path"].rstrip("/") == "/mcp":
        await mcp_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


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
