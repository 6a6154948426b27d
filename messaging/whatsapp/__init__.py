"""The gateway's backends: `get_backend()` returns the one WA_BACKEND names."""

from functools import cache

from django.conf import settings

from messaging.whatsapp.protocol import Backend


@cache
def get_backend(name: str | None = None) -> Backend:
    name = name or settings.WA_BACKEND
    if name == "sandbox":
        from messaging.whatsapp.sandbox import SandboxBackend

        return SandboxBackend()
    if name == "neonize":
        from messaging.whatsapp.neonize_backend import NeonizeBackend

        return NeonizeBackend()
    raise ValueError(f"unknown WhatsApp backend {name!r}")
