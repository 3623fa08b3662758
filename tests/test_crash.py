"""After an unclean shutdown the UNLOGGED cache is empty; feeds stay identical, with no LLM call."""

from __future__ import annotations

from datetime import date

import psycopg

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from cli.main import migrate
from db.connect import connect
from db.server import EmbeddedServer

DAY = date(2026, 4, 20)


def feeds(url: str, users: range) -> list[list[tuple]]:
    with psycopg.connect(url) as conn:
        return [conn.execute("SELECT * FROM ootd.feed(%s, %s, 5)", (u, f"{DAY} 16:00+00")).fetchall() for u in users]


def test_immediate_stop_and_restart_serves_identical_feeds_without_llm_calls(tmp_path):
    # synchronous_commit stays on here: with it off, an immediate stop (a crash)
    # may lose the last commits, which is PostgreSQL's documented trade-off.
    server = EmbeddedServer(tmp_path / "crash", settings={"fsync": "off"})
    url = server.ensure_running()
    try:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, 2_000, 9)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
        users = range(1, 200)
        before = feeds(url, users)
        with psycopg.connect(url) as conn:
            calls_before = conn.execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0]
            assert conn.execute("SELECT count(*) FROM ootd.pool_cache").fetchone()[0] > 0

        assert server.stop("immediate")
        server.restart()

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM ootd.pool_cache").fetchone()[0] == 0  # crash recovery emptied it
            health = conn.execute("SELECT durable_rows, cache_rows, complete FROM ootd.cache_health "
                                  "WHERE pool_date = %s", (DAY,)).fetchone()
            assert health[1:] == (0, False) and health[0] > 0
        assert feeds(url, users) == before
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0] == calls_before
            assert conn.execute("SELECT ootd.rehydrate_cache()").fetchone()[0] == health[0]
            conn.commit()
            assert conn.execute("SELECT DISTINCT source FROM ootd.feed_explain(1, %s)",
                                (f"{DAY} 16:00+00",)).fetchall() == [("cache",)]
        assert feeds(url, users) == before
    finally:
        server.stop("immediate")
