"""WebSocket routes of the live dashboard."""

from django.urls import path

from messaging.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
]
