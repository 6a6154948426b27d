"""Webhook dispatch: turns domain events into signed deliveries (filled in by the webhook work).

`dispatch_event` is the one entry point the event handler calls, inside its transaction.
"""


def dispatch_event(*, device, event: str, payload: dict) -> None:
    """Record and enqueue a delivery of `event` (e.g. "message") with `payload` to each matching endpoint."""
    return None
