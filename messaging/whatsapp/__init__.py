"""The gateway's backends: `get_backend()` returns the one WA_BACKEND names (one instance per name and process)."""

from functools import cache

from django.conf import settings

from messaging.whatsapp.protocol import Backend


def get_backend(name: str | None = None) -> Backend:
    # Keyed by the resolved name, so get_backend() and get_backend(settings.WA_BACKEND) share one instance.
    return _backend(name or settings.WA_BACKEND)


@cache
def _backend(name: str) -> Backend:
    if name == "sandbox":
        from messaging.whatsapp.sandbox import SandboxBackend

        return SandboxBackend()
    if name == "neonize":
        # Importing the backend loads no neonize code: that happens when a device's client first connects.
        from messaging.whatsapp.neonize.backend import NeonizeBackend

        return NeonizeBackend()
    raise ValueError(f"unknown WhatsApp backend {name!r}")


get_backend.cache_clear = _backend.cache_clear
