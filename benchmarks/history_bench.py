"""History benchmark: the inbox, a conversation, GET /chats and GET /chat/{jid}/messages on a big history.

Builds, in a throw-away database, the demo organization's number with `--chats` chats, one of which holds
`--messages` messages (every 10th a media kind, every 3rd mine, one in 1000 deleted for me, the word "needle" in
a handful of them), with bulk INSERT ... SELECT (a recursive CTE on SQLite, generate_series on PostgreSQL),
then ANALYZE (PostgreSQL: VACUUM ANALYZE, so index-only scans can skip the rows). Then calls each endpoint
`--requests` times in process through Django's test client (server time: middleware, auth, view, rendering;
no network) and prints p50/p99 wall milliseconds, the p50 CPU milliseconds of the serving thread (on a busy
machine the truer figure of our own cost; on PostgreSQL it leaves out the database server's time) and the SQL
queries of one request. 50 ms (wall, p99) is the budget.

    .venv/bin/python benchmarks/history_bench.py [--messages 1000000] [--chats 100000] [--requests 30]
    .venv/bin/python benchmarks/history_bench.py --database-url postgres://postgres@127.0.0.1:5432/NAME

The PostgreSQL database NAME is dropped and created again: give one of its own. --explain prints the plan of
the id query of each API request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


def configure(database_url: str) -> None:
    os.environ["WAPORTAL_DATA_DIR"] = tempfile.mkdtemp(prefix="waportal-history-bench-")
    os.environ["WA_BACKEND"] = "sandbox"
    os.environ["DEBUG"] = "0"
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        import psycopg

        base, name = database_url.rsplit("/", 1)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = database_url
        os.environ.setdefault("SECRET_KEY", "benchmark-only-not-secret")
        os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "waportal.settings")
    import django

    django.setup()


def insert_select(model, count: int, values: dict[str, str], params: list, where: str = "") -> None:
    """INSERT INTO model's table SELECT over n = 1..count; `values` are SQL expressions of n per column, the
    other columns get their Python default (a parameter), so the model may grow without this changing."""
    from django.db import connection

    columns, exprs, all_params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in values:
            exprs.append(values[field.name])
        else:
            exprs.append("%s")
            all_params.append(field.get_db_prep_save(field.get_default(), connection))
    # The expressions' own parameters come after the defaults in `exprs` order: keep them in order.
    ordered, it_defaults, it_values = [], iter(all_params), iter(params)
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.name in values:
            ordered.extend(next(it_values) for _ in range(values[field.name].count("%s")))
        else:
            ordered.append(next(it_defaults))
    table = connection.ops.quote_name(model._meta.db_table)
    select = f"SELECT {', '.join(exprs)} FROM "
    if connection.vendor == "postgresql":
        sql = f"INSERT INTO {table} ({', '.join(columns)}) {select} generate_series(1, %s) AS s(n) {where}"
    else:
        sql = (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
            f"INSERT INTO {table} ({', '.join(columns)}) {select} s {where}"
        )
        ordered = [count, *ordered]
    if connection.vendor == "postgresql":
        ordered = [*ordered, count]
    with connection.cursor() as cursor:
        cursor.execute(sql, ordered)


def seconds_after(base: str, expr: str) -> str:
    """SQL: the time `expr` seconds after the parameter `base` (Django's storage format on SQLite)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"(%s::timestamptz + ({expr}) * interval '1 second')"
    return f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', %s, ({expr}) || ' seconds')"


def build(messages: int, chats: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from messaging.management.commands.demo import build_demo
    from messaging.models import Chat, Device, Message

    call_command("migrate", verbosity=0)
    demo = build_demo()
    device = Device.objects.get(pk=demo["device_id"])
    Message.objects.filter(device=device).delete()
    Chat.objects.filter(device=device).delete()
    base = (
        BASE_TIME.isoformat()
        if connection.vendor == "postgresql"
        else BASE_TIME.strftime("%Y-%m-%d %H:%M:%S")
    )
    concat = "||"
    started = time.perf_counter()
    # Chats: n = 1 is the big one (the most recent), the others each an hour older than the one before.
    insert_select(
        Chat,
        chats,
        {
            "organization": "%s",
            "device": "%s",
            "jid": f"('9055' {concat} (10000000 + n) {concat} '@s.whatsapp.net')",
            "name": f"('Contact ' {concat} n)",
            "last_message_at": seconds_after(base, f"{messages} - n * 3600"),
            "last_message_preview": f"('last words of chat ' {concat} n)",
            "created_at": "%s",
        },
        [device.organization_id, device.pk, base, BASE_TIME if connection.vendor == "postgresql" else base],
    )
    big = Chat.objects.get(device=device, jid="905510000001@s.whatsapp.net")
    chats_seconds = time.perf_counter() - started
    started = time.perf_counter()
    kinds = "CASE WHEN n %% 10 = 0 THEN 'image' ELSE 'text' END"
    insert_select(
        Message,
        messages,
        {
            "organization": "%s",
            "device": "%s",
            "chat": "%s",
            "wa_id": f"('BENCH' {concat} n)",
            "from_me": "(n %% 3 = 0)",
            "sender_jid": "%s",
            "kind": kinds,
            "text": f"(CASE WHEN n %% 100000 = 7 THEN 'the needle ' ELSE '' END {concat} 'hello number ' {concat} n)",
            "status": "'received'",
            "deleted_for_me_at": f"CASE WHEN n %% 1000 = 500 THEN {seconds_after(base, 'n')} END",
            "timestamp": seconds_after(base, "n"),
            "created_at": seconds_after(base, "n"),
        },
        [device.organization_id, device.pk, big.pk, big.jid, base, base, base],
    )
    messages_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            autocommit = connection.get_autocommit()
            connection.set_autocommit(True)
            cursor.execute("VACUUM ANALYZE messaging_message")
            cursor.execute("VACUUM ANALYZE messaging_chat")
            connection.set_autocommit(autocommit)
        else:
            cursor.execute("ANALYZE")
    return {
        "demo": demo,
        "device": device,
        "big": big,
        "build": f"chats {chats_seconds:.1f} s, messages {messages_seconds:.1f} s, "
        f"analyze {time.perf_counter() - started:.1f} s",
    }


def measure(client, path: str, requests: int, **headers) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timings, cpu = [], []
    response = None
    for _ in range(requests + 2):  # two warm-ups
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = client.get(path, **headers)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.content[:300]!r}")
    executed = []  # (sql, params) as sent: the captured text has the parameters inlined, plans differ

    def keep(execute, sql, params, many, context):
        executed.append((sql, params))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(keep):
        client.get(path, **headers)
    timings = sorted(timings[2:])
    return {
        "p50": statistics.median(timings),
        "cpu50": statistics.median(cpu[2:]),
        "p99": timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))],
        "queries": len(queries.captured_queries),
        "sql": executed,
        "response": response,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--database-url", default="", help="A PostgreSQL database of its own (dropped first)."
    )
    parser.add_argument("--explain", action="store_true", help="Print the plan of each API id query.")
    args = parser.parse_args()
    configure(args.database_url)

    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from accounts.models import User
    from messaging.events import rfc3339
    from messaging.management.commands.demo import DEMO_EMAIL
    from messaging.models import Message
    from messaging.views.inbox import encode_cursor

    built = build(args.messages, args.chats)
    # As a server process does once loaded (waportal/asgi.py): what is loaded is left out of full collections.
    from django.urls import get_resolver

    from waportal.gc_freeze import freeze_startup_objects

    get_resolver().url_patterns  # noqa: B018
    freeze_startup_objects()
    device, big = built["device"], built["big"]
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {built['demo']['api_key']}")
    pages = Client(HTTP_HOST="127.0.0.1")
    pages.force_login(User.objects.get(email=DEMO_EMAIL))

    deep_messages = max(0, args.messages * 9 // 10)
    deep_chats = max(0, args.chats * 9 // 10)
    deep_message = Message.objects.filter(chat=big, deleted_for_me_at__isnull=True).order_by(
        "-timestamp", "-id"
    )[deep_messages]
    deep_chat = device.chats.order_by("-last_message_at", "-id")[deep_chats]
    inbox = reverse("messaging:inbox", args=[device.pk])
    conversation = reverse("messaging:conversation", args=[device.pk, big.pk])
    msgs = f"/chat/{big.jid}/messages"
    middle = rfc3339(deep_message.timestamp)
    cases = [
        ("page", "inbox, first page", inbox),
        (
            "page",
            f"inbox, after chat #{deep_chats}",
            f"{inbox}?after={encode_cursor(deep_chat.last_message_at, deep_chat.pk)}",
        ),
        ("page", "inbox, search", f"{inbox}?q=Contact%20777"),
        ("page", "conversation, newest", conversation),
        (
            "page",
            f"conversation, before msg #{deep_messages}",
            f"{conversation}?before={encode_cursor(deep_message.timestamp, deep_message.pk)}",
        ),
        ("api", "GET /chats", "/chats?limit=25"),
        ("api", "GET /chats offset 1000", "/chats?limit=25&offset=1000"),
        ("api", f"GET /chats offset {deep_chats}", f"/chats?limit=25&offset={deep_chats}"),
        ("api", "GET /chats search", "/chats?limit=25&search=Contact%20777"),
        ("api", "messages", f"{msgs}?limit=25"),
        ("api", "messages offset 1000", f"{msgs}?limit=25&offset=1000"),
        ("api", f"messages offset {deep_messages}", f"{msgs}?limit=25&offset={deep_messages}"),
        ("api", "messages media_only", f"{msgs}?limit=25&media_only=true"),
        ("api", "messages media_only offset 10000", f"{msgs}?limit=25&media_only=true&offset=10000"),
        ("api", "messages is_from_me", f"{msgs}?limit=25&is_from_me=true"),
        ("api", "messages is_from_me=false offset 10000", f"{msgs}?limit=25&is_from_me=false&offset=10000"),
        ("api", "messages end_time (deep)", f"{msgs}?limit=25&end_time={middle}"),
        ("api", "messages search common word", f"{msgs}?limit=25&search=hello"),
        ("api", "messages search rare word", f"{msgs}?limit=25&search=needle"),
        ("api", "messages search rare substring", f"{msgs}?limit=25&search=eedl"),
    ]
    vendor = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    print(
        f"History benchmark ({vendor}): {args.messages:,} messages in one chat, {args.chats:,} chats on one number; "
        f"build: {built['build']}; {args.requests} requests each, in process (server time)"
    )
    print(f"  {'request':<48} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'queries':>8}")
    slow = []
    for kind, label, path in cases:
        r = measure(pages if kind == "page" else api, path, args.requests)
        flag = "" if r["p99"] < 50 else "  over 50 ms"
        if flag:
            slow.append(label)
        extra = ""
        if kind == "api":
            pagination = r["response"].json()["results"]["pagination"]
            extra = f"  (rows {len(r['response'].json()['results']['data'])}, total {pagination['total']:,})"
        print(
            f"  {label:<48} {r['p50']:8.1f} {r['p99']:8.1f} {r['cpu50']:8.1f} {r['queries']:8d}{extra}{flag}"
        )
        if args.explain and kind == "api":
            table = "messaging_message" if "/messages" in path else "messaging_chat"
            sql, params = next(
                ((q, p) for q, p in r["sql"] if f'FROM "{table}"' in q and "ORDER BY" in q), (None, None)
            )
            if sql:
                with connection.cursor() as cursor:
                    prefix = (
                        "EXPLAIN ANALYZE " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
                    )
                    cursor.execute(prefix + sql, params)
                    for row in cursor.fetchall():
                        print("        " + " | ".join(str(x) for x in row))
    print(f"  over the 50 ms budget (p99): {', '.join(slow) if slow else 'none'}")


if __name__ == "__main__":
    main()
