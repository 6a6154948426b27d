"""The embedded default's SQLite backend: every writer waits its turn at one lock, never at SQLite's own door.

Each test gives SQLite a busy timeout far shorter than the wait it makes (0.2 s against 1 s): a writer that
met SQLite's lock instead of ours would fail with "database is locked"."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

BASE_DIR = Path(__file__).resolve().parents[2]
HOLD = 1.0  # seconds a writer keeps its transaction open: five times SQLite's busy timeout below
SQLITE_TIMEOUT = 0.2


def database(path) -> dict:
    return {
        "default": {
            "ENGINE": "waportal.sqlite",
            "NAME": str(path),
            "OPTIONS": {"timeout": SQLITE_TIMEOUT, "transaction_mode": "IMMEDIATE"},
        }
    }


@pytest.fixture
def handler(tmp_path, django_db_blocker):
    """Connections (one per thread, as Django's) to a fresh file of its own, not the test database."""
    with django_db_blocker.unblock():
        yield from _handler(tmp_path)


def _handler(tmp_path):
    handler = ConnectionHandler(database(tmp_path / "lock.sqlite3"))
    connection = handler["default"]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        cursor.execute("INSERT INTO t (v) VALUES ('first')")
    yield handler
    handler.close_all()


def in_thread(fn):
    """Run `fn` on a thread; returns a function that joins it and gives its result (or raises its error)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()

    def result(timeout=30):
        thread.join(timeout)
        assert not thread.is_alive()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return result


def begin_and_write(connection, value):
    connection.ensure_connection()
    connection._start_transaction_under_autocommit()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO t (v) VALUES (%s)", [value])


def test_a_writer_waits_out_a_long_transaction_instead_of_failing(handler):
    holder = handler["default"]
    begin_and_write(holder, "held")

    def write():
        connection = handler["default"]  # this thread's own connection
        try:
            begin_and_write(connection, "waited")
            connection.commit()
            return time.monotonic()
        finally:
            connection.close()

    waiting = in_thread(write)
    time.sleep(HOLD)  # the long transaction under test, not a wait for something to happen
    committed = time.monotonic()
    holder.commit()
    assert waiting() >= committed  # it waited for the commit, then wrote
    with holder.cursor() as cursor:
        cursor.execute("SELECT v FROM t ORDER BY id")
        assert [row[0] for row in cursor.fetchall()] == ["first", "held", "waited"]


def test_a_write_outside_a_transaction_waits_too(handler):
    holder = handler["default"]
    begin_and_write(holder, "held")

    def update():
        connection = handler["default"]
        try:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE t SET v = v || '!' WHERE id = 1 RETURNING v")
                return cursor.fetchone()[0]
        finally:
            connection.close()

    waiting = in_thread(update)
    time.sleep(HOLD)
    holder.commit()
    assert waiting() == "first!"


def test_update_returning_lets_go_of_the_file_before_its_rows_are_read(handler):
    """An UPDATE ... RETURNING holds SQLite's lock until its rows are read; read under our lock, they cannot
    keep the next writer waiting at SQLite's door."""
    first = handler["default"]
    with first.cursor() as cursor:
        cursor.execute("UPDATE t SET v = 'changed' WHERE id = 1 RETURNING id")

        def write():
            connection = handler["default"]
            try:
                with connection.cursor() as other:
                    other.execute("INSERT INTO t (v) VALUES ('next')")
            finally:
                connection.close()

        in_thread(write)()  # would fail after SQLite's 0.2 s if the UPDATE still held the file
        assert cursor.fetchone() == (1,)


SECOND_PROCESS = """
import sys
import django
from django.conf import settings
settings.configure(DATABASES={databases!r}, USE_TZ=True)
django.setup()
from django.db import connection
print("writing", flush=True)
with connection.cursor() as cursor:
    cursor.execute("INSERT INTO t (v) VALUES ('other process')")
print("written", flush=True)
"""


def test_another_process_waits_its_turn_too(handler, tmp_path):
    holder = handler["default"]
    begin_and_write(holder, "held")
    other = subprocess.Popen(
        [sys.executable, "-c", SECOND_PROCESS.format(databases=database(tmp_path / "lock.sqlite3"))],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert other.stdout.readline().strip() == "writing"
    time.sleep(HOLD)
    holder.commit()
    out, err = other.communicate(timeout=30)
    assert other.returncode == 0, err
    assert out.strip() == "written"


def test_a_reused_connection_enforces_foreign_keys_even_after_a_migration_turned_them_off(handler):
    """Connections go back to a pool when closed; one closed while a migration had foreign keys off is not
    pooled, so the next thread still gets a connection that refuses a row pointing nowhere."""
    connection = handler["default"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, t_id INTEGER REFERENCES t (id))")
    assert connection.disable_constraint_checking()
    connection.close()  # (as a migration that failed halfway would leave it)

    def foreign_keys_of_a_new_thread():
        other = handler["default"]
        with other.cursor() as cursor:
            enabled = cursor.execute("PRAGMA foreign_keys").fetchone()[0]
        other.close()
        return enabled

    assert in_thread(foreign_keys_of_a_new_thread)() == 1
    connection.enable_constraint_checking()
    connection.close()  # pooled this time, with them on
    assert in_thread(foreign_keys_of_a_new_thread)() == 1
