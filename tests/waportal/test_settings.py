"""Settings from the environment: bounded database connections, a channel layer that rides out Redis restarts."""

from channels_redis.core import RedisChannelLayer

from waportal.settings import _channel_layer_host, _database

URL = "postgres://app:secret@db.example:5432/waportal"


def test_postgresql_connections_are_a_pool_of_db_pool_size_per_process(monkeypatch):
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    database = _database(URL)
    assert database["OPTIONS"]["pool"]["max_size"] == 8 and database["CONN_MAX_AGE"] == 0
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "4")
    pool = _database(URL)["OPTIONS"]["pool"]
    assert (pool["max_size"], pool["timeout"]) == (3, 4.0)


def test_without_the_pool_db_conn_max_age_says_how_long_a_thread_keeps_its_connection(monkeypatch):
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    monkeypatch.setenv("DB_CONN_MAX_AGE", "30")
    database = _database(URL)
    assert "pool" not in database.get("OPTIONS", {}) and database["CONN_MAX_AGE"] == 30
    monkeypatch.delenv("DB_CONN_MAX_AGE")
    assert _database(URL)["CONN_MAX_AGE"] == 0  # no longer 60 s, hard-coded


def test_the_channel_layer_reads_longer_than_its_blocking_pop():
    """redis-py's default read timeout (5 s) was channels_redis's blocking pop: idle receives timed out."""
    host = _channel_layer_host("redis://127.0.0.1:6379/0")
    assert host["socket_timeout"] > RedisChannelLayer.brpop_timeout
    assert host["socket_connect_timeout"] <= 5 and host["retry"] is not None
