"""WebSocket routes; each app contributes its own list."""

from messaging.routing import websocket_urlpatterns as messaging_ws

websocket_urlpatterns = [*messaging_ws]
