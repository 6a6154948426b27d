"""History import benchmark: one chunk of 10,000 messages in 100 chats received and imported, while a live
message is stored every 0.2 s beside it; prints the receive and import times and the live messages' latency
(median, max) with a baseline taken before. Skipped unless asked for (a benchmark, not a test):

    WAPORTAL_BENCH=1 env -u DATABASE_URL -u REDIS_URL WAPORTAL_DATA_DIR=/tmp/bench .venv/bin/python -m pytest \
        tests/messaging/test_history_import_bench.py -q -s
    (PostgreSQL: the same with DATABASE_URL, REDIS_URL, SECRET_KEY set)
"""

import os
import statistics
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from messaging import events
from messaging.models import Device, Message
from messaging.services import history_import
from messaging.whatsapp import protocol as p

pytestmark = pytest.mark.skipif(not os.environ.get("WAPORTAL_BENCH"), reason="a benchmark: WAPORTAL_BENCH=1")


@pytest.mark.django_db(transaction=True)
def test_history_import_beside_live_messages(org):
    org.history_days = None
    org.save()
    device = Device.objects.create(organization=org, name="B", jid="19990000009@s.whatsapp.net")
    now = timezone.now().timestamp()
    convs = []
    for c in range(100):
        jid = f"1555{c:07d}@s.whatsapp.net"
        msgs = [
            p.IncomingMessage(
                id=f"M{c}-{i}", chat=jid, sender=jid, text=f"hello {i}", timestamp=now - 10000 + i
            )
            for i in range(100)
        ]
        convs.append(p.HistoryConversation(jid=jid, name=f"C{c}", unread_count=2, messages=msgs))
    ev = p.HistorySyncEvent(device_id=device.pk, chunk_order=1, progress=100, final=True, conversations=convs)
    base = []
    for k in range(15):
        m = p.IncomingMessage(
            id=f"BASE{k}",
            chat="15550000001@s.whatsapp.net",
            sender="15550000001@s.whatsapp.net",
            text="live",
            timestamp=time.time(),
        )
        s = time.perf_counter()
        events.persist(p.MessageEvent(device_id=device.pk, message=m))
        base.append(time.perf_counter() - s)
    print(f"\nBENCH baseline live median {statistics.median(base) * 1000:.0f}ms max {max(base) * 1000:.0f}ms")
    t0 = time.perf_counter()
    events.persist(ev)
    t1 = time.perf_counter()
    done = threading.Event()

    def run():
        while history_import.import_next_chunk(device.pk)[1]:
            pass
        connections.close_all()
        done.set()

    threading.Thread(target=run).start()
    lat = []
    i = 0
    while not done.is_set():
        i += 1
        m = p.IncomingMessage(
            id=f"LIVE{i}",
            chat="15550000001@s.whatsapp.net",
            sender="15550000001@s.whatsapp.net",
            text="live",
            timestamp=time.time(),
        )
        s = time.perf_counter()
        events.persist(p.MessageEvent(device_id=device.pk, message=m))
        lat.append(time.perf_counter() - s)
        time.sleep(0.2)
    t2 = time.perf_counter()
    assert Message.objects.filter(device=device).count() == 10015 + i
    lat.sort()
    print(
        f"\nBENCH receive {t1 - t0:.3f}s import {t2 - t1:.3f}s live n={len(lat)} median {statistics.median(lat) * 1000:.0f}ms max {lat[-1] * 1000:.0f}ms"
    )
