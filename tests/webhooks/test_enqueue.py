"""Enqueuing drains: in the embedded process one waiting drain per queue, however many events come meanwhile."""

import pytest

from messaging.webhooks import queueing


@pytest.fixture
def sent(monkeypatch):
    from waportal.celery import app

    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **kw: calls.append((args, kw.get("countdown"))))
    monkeypatch.setattr(queueing, "_waiting", {})
    return calls


def test_a_burst_of_events_in_the_embedded_process_waits_on_one_drain(sent, monkeypatch):
    # The in-process worker took longer over a drain than events took to come: one drain each made the
    # broker's queue (this process's memory) grow by thousands of tasks a minute.
    monkeypatch.setattr(queueing, "_in_process_broker", lambda: True)
    for _ in range(50):
        queueing.enqueue(7, 3)
    queueing.enqueue(7, None)  # another queue: its own drain
    assert sent == [((7, 3), None), ((7, None), None)]
    queueing.draining(7, 3)  # the drain starts: what is stored from now on needs a new one
    queueing.enqueue(7, 3)
    queueing.enqueue(7, 3, countdown=30)  # a retry later is always its own
    assert sent[2:] == [((7, 3), None), ((7, 3), 30)]


def test_a_mark_whose_drain_never_started_is_not_trusted_for_long(sent, monkeypatch):
    monkeypatch.setattr(queueing, "_in_process_broker", lambda: True)
    now = [1000.0]
    monkeypatch.setattr(queueing.time, "monotonic", lambda: now[0])
    queueing.enqueue(7, 3)
    now[0] += queueing.WAITING_STALE_SECONDS + 1
    queueing.enqueue(7, 3)
    assert len(sent) == 2


def test_with_a_broker_between_processes_every_event_enqueues(sent, monkeypatch):
    # The drain runs in another process, which cannot clear this one's mark: nothing is held back.
    monkeypatch.setattr(queueing, "_in_process_broker", lambda: False)
    for _ in range(3):
        queueing.enqueue(7, 3)
    assert len(sent) == 3


def test_a_broker_failure_forgets_the_mark(monkeypatch):
    from waportal.celery import app

    monkeypatch.setattr(queueing, "_waiting", {})
    monkeypatch.setattr(queueing, "_in_process_broker", lambda: True)

    def refuse(*args, **kwargs):
        raise ConnectionError("broker gone")

    monkeypatch.setattr(app, "send_task", refuse)
    queueing.enqueue(7, 3)
    assert queueing._waiting == {}  # the next event tries again
