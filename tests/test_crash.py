"""After an unclean shutdown the UNLOGGED cache is empty; feeds stay identical, with no LLM call, and the
served feeds (logged) come back as they were and are served again: nothing to rebuild by hand."""

from __future__ import annotations

import json
import os
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


def served(url: str, users: range) -> tuple[list[list[tuple]], int, str]:
    """The app's feeds (limit 3, what the nightly wrote ahead), how many were answered from a served row,
    and a digest of every served row."""
    at = f"{DAY} 16:00+00"
    with psycopg.connect(url) as conn:
        answers = [conn.execute("SELECT * FROM ootd.feed(%s, %s)", (u, at)).fetchall() for u in users]
        from_rows = sum(bool(conn.execute("SELECT * FROM ootd._served(%s, %s, 3)", (u, at)).fetchall()) for u in users)
        digest = conn.execute(
            "SELECT md5(string_agg(f::text, ',' ORDER BY f.user_id, f.local_date, f.priority_daypart)) "
            "FROM ootd.served_feeds f"
        ).fetchone()[0]
    return answers, from_rows, digest


def test_immediate_stop_and_restart_serves_identical_feeds_without_llm_calls(tmp_path):
    # synchronous_commit stays on here: with it off, an immediate stop (a crash)
    # may lose the last commits, which is PostgreSQL's documented trade-off.
    server = EmbeddedServer(tmp_path / "crash", settings={"fsync": "off"})
    url = server.ensure_running()
    try:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, 2_000, 9)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline", serve_ahead=True))
        users = range(1, 200)
        before = feeds(url, users)
        served_before = served(url, users)
        assert served_before[1] > len(users) // 2  # most users' feeds at that instant come from a served row
        with psycopg.connect(url) as conn:
            calls_before = conn.execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0]
            assert conn.execute("SELECT count(*) FROM ootd.pool_cache").fetchone()[0] > 0

        assert server.stop("immediate")
        server.restart()

        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM ootd.pool_cache").fetchone()[0] == 0  # crash recovery emptied it
            health = conn.execute(
                "SELECT durable_rows, cache_rows, complete FROM ootd.cache_health WHERE pool_date = %s", (DAY,)
            ).fetchone()
            assert health[1:] == (0, False) and health[0] > 0
        assert feeds(url, users) == before
        assert served(url, users) == served_before  # the served rows are durable: the same rows, served again
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0] == calls_before
            assert conn.execute("SELECT ootd.rehydrate_cache(%s)", (DAY,)).fetchone()[0] == health[0]
            conn.commit()
            assert conn.execute(
                "SELECT DISTINCT source FROM ootd.feed_explain(1, %s)", (f"{DAY} 16:00+00",)
            ).fetchall() == [("cache",)]
        assert feeds(url, users) == before
    finally:
        server.stop("immediate")


def test_db_start_nightly_and_serve_refill_the_cache_after_a_crash(tmp_path):
    """`ootd db start`, `ootd nightly` and `ootd serve` rehydrate a cache a crash emptied, by themselves."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from db import REPO_ROOT
    from tests.conftest import run_cli

    home = tmp_path / "home"
    env = {"OOTD_HOME": str(home)}
    server = EmbeddedServer(home)
    try:
        for args in (["migrate"], ["seed", "--users", "300"], ["nightly", "--llm", "offline"]):
            result = run_cli(*args, env=env)
            assert result.returncode == 0, result.stderr
        url = server.dsn()

        def crash() -> None:
            assert server.stop("immediate")
            server.restart()
            assert status() == (0, False)

        def status() -> tuple[int, bool]:
            with psycopg.connect(url) as conn:
                pools, cached = conn.execute("SELECT pools, cached_pools FROM ootd.serving_status()").fetchone()
                return cached, pools > 0 and cached == pools

        assert status()[1]
        calls = lambda: psycopg.connect(url).execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0]  # noqa: E731
        llm_calls = calls()

        crash()
        assert server.stop("fast")
        started = run_cli("db", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert "the pool cache was empty after a crash: restored" in started.stderr
        assert status()[1]

        crash()
        again = run_cli("nightly", "--llm", "offline", env=env)
        assert again.returncode == 0, again.stderr
        assert status()[1] and calls() == llm_calls  # the pools existed: refilled, no LLM call

        crash()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        serve = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "1"],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                        ready = json.loads(answer.read())
                    break
                except OSError:
                    assert serve.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            assert ready["fallback_pools"] == 0 and ready["cached_pools"] == ready["pools"] > 0
        finally:
            serve.terminate()
            serve.wait(30)
    finally:
        server.stop("immediate")
