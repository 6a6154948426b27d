"""The soak benchmark for one minute: a day's traffic in miniature leaves no growth, no leak and no backlog."""

import pytest
from django.conf import settings


# The soak runs the embedded default in a server of its own, whatever database this run uses: once is enough.
@pytest.mark.skipif(
    not settings.EMBEDDED, reason="the soak serves the embedded default; it runs in that CI pass"
)
@pytest.mark.timeout(400)  # a minute of traffic, plus start-up and drain on a busy machine
def test_a_minute_of_steady_traffic_leaves_no_growth_leak_or_backlog():
    """20 numbers sending and receiving, webhooks to a local receiver, a live WebSocket: after warm-up the
    server's RSS grows < 10%, its file descriptors, threads and SQLite connections come back to what they
    were, the outbox and webhook backlogs drain to 0, no 5xx, the socket never drops (benchmarks/soak.py)."""
    from benchmarks import soak

    result = soak.run(minutes=1, numbers=20, rate=5)
    failed = [text for text, ok in result["checks"].items() if not ok]
    assert not failed, f"{failed}; server log: {result['log_path']}"
