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


async def http_app(scope, receive, send):
    """/mcp (and /mcp/) to the MCP server; everything else to Django."""
    if scope["path"].rstrip("/") == "/mcp":
        await mcp_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
