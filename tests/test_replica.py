"""A real streaming hot standby of the embedded server (`ootd db replica`): it replays the primary,
refuses writes, serves the same feeds, and /readyz says it is a standby.

One primary per module (its own OOTD_HOME): migrated, 500 users, the offline pools of DAY and of
today (for /readyz), then its replica (pg_basebackup -R), caught up with the primary's WAL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from api.app import create_app
from api.auth import issue_token
from api.connector import FEED_COLUMNS
from db import REPO_ROOT
from tests.conftest import Pair, replica_pair, run_cli

DAY = date(2026, 4, 20)
USERS = 500
INSTANTS = [datetime(2026, 4, 20, hour, tzinfo=UTC) for hour in (9, 15, 21)]
FEED = "SELECT * FROM ootd.feed(%s, %s, 3)"
SECRET = "test-secret-" + "r" * 60


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replica_pair(tmp_path_factory.mktemp("replica-home"), USERS, 42, DAY) as both:
        yield both


def lsn_caught_up(pair: Pair) -> None:
    """Wait until the standby has replayed the primary's current LSN (and check it, spelled out).

    wait_for_replay's target is pg_current_wal_insert_lsn(): these servers run with synchronous_commit
    off, so pg_current_wal_lsn() (the write position) can lag behind a commit that already returned.
    """
    target = pair.replica.wait_for_replay(timeout=60)
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as standby:
        assert standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]


def feed_rows(conn: psycopg.Connection, user_id: int, at: datetime) -> list[tuple]:
    cursor = conn.execute(FEED, (user_id, at))
    assert [column.name for column in cursor.description][: len(FEED_COLUMNS)] == list(FEED_COLUMNS)
    return cursor.fetchall()


# -------------------------------------------------------------------- replay --
def test_the_standby_replays_the_primary_and_refuses_writes(pair: Pair):
    lsn_caught_up(pair)
    with (
        psycopg.connect(pair.primary.dsn(), autocommit=True) as primary,
        psycopg.connect(pair.replica.dsn(), autocommit=True) as standby,
    ):
        assert primary.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert standby.execute("SELECT current_database()").fetchone()[0] == "ootd"
        for table in ("ootd.users", "ootd.pools", "ootd.outfits"):
            count = f"SELECT count(*) FROM {table}"
            assert standby.execute(count).fetchone() == primary.execute(count).fetchone(), table
        assert primary.execute("SELECT count(*) FROM ootd.users").fetchone()[0] == USERS
        assert primary.execute("SELECT count(*) FROM ootd.outfits").fetchone()[0] > 0

        status = "SELECT pool_date, pools, ready FROM ootd.serving_status(%s)"
        at = INSTANTS[1]
        on_standby = standby.execute(status, (at,)).fetchone()
        assert on_standby == primary.execute(status, (at,)).fetchone()
        assert on_standby[0] == DAY and on_standby[1] > 0 and on_standby[2] is True
        # the standby cannot read the UNLOGGED cache: every pool is served from durable storage
        assert standby.execute(
            "SELECT cached_pools, fallback_pools = pools FROM ootd.serving_status(%s)", (at,)
        ).fetchone() == (0, True)

        outfit_id = primary.execute("SELECT min(id) FROM ootd.outfits").fetchone()[0]
        for statement, params in (
            ("UPDATE ootd.users SET city = city WHERE id = 1", None),
            ("SELECT ootd.like(1, %s)", (outfit_id,)),
            ("CREATE TABLE ootd.scratch (id int)", None),
        ):
            with pytest.raises(errors.ReadOnlySqlTransaction) as caught:
                standby.execute(statement, params)
            assert caught.value.sqlstate == "25006", statement


def test_the_cli_prints_the_standby_dsn_and_a_second_start_changes_nothing(pair: Pair):
    env = {"OOTD_HOME": str(pair.home)}
    pid = (pair.replica.pgdata / "postmaster.pid").read_text().splitlines()[0]

    url = run_cli("db", "replica", "url", env=env)
    assert url.returncode == 0, url.stderr
    dsn = url.stdout.strip()
    assert dsn == pair.replica.dsn() and dsn != pair.primary.dsn()
    assert url.stderr == ""  # already running: nothing to announce
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery(), current_database()").fetchone() == (True, "ootd")

    again = run_cli("db", "replica", "start", env=env)
    assert again.returncode == 0 and again.stdout.strip() == dsn and again.stderr == "", again.stderr
    assert (pair.replica.pgdata / "postmaster.pid").read_text().splitlines()[0] == pid  # the same postmaster

    status = run_cli("db", "status", env=env)
    assert status.returncode == 0
    assert status.stdout.splitlines() == [f"running: {pair.primary.pgdata}", f"replica running: {pair.replica.pgdata}"]

    refused = run_cli("db", "replica", "start", env={"DATABASE_URL": pair.primary.dsn()})
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "ootd: error: 'ootd db replica start' manages the embedded server; DATABASE_URL is set"
    )


# ---------------------------------------------------------------------- feed --
def test_feed_on_a_hot_standby_equals_the_primary(pair: Pair):
    """50 users x 3 instants on the standby first (nothing memoized anywhere yet), then on the primary:
    the standby answers every call, row for row what the primary answers."""
    lsn_caught_up(pair)
    users = range(1, USERS + 1, USERS // 50)  # 1, 11, ..., 491
    assert len(users) == 50
    on_standby: dict[tuple[int, datetime], list[tuple]] = {}
    failures: list[str] = []
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as standby:
        for user_id in users:
            for at in INSTANTS:
                try:
                    on_standby[user_id, at] = feed_rows(standby, user_id, at)
                except psycopg.Error as exc:
                    failures.append(f"user {user_id} at {at:%H:%M}: SQLSTATE {exc.sqlstate}: {exc}".strip())
    assert not failures, (
        f"{len(failures)} of {len(users) * len(INSTANTS)} feeds failed on the standby, the first: {failures[0]}"
    )
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as primary:
        for (user_id, at), rows in on_standby.items():
            assert rows, (user_id, at)
            assert rows == feed_rows(primary, user_id, at), (user_id, at)


def test_feed_in_a_read_only_transaction_equals_the_normal_answer(pair: Pair):
    """On the primary: BEGIN; SET TRANSACTION READ ONLY; ootd.feed (first, nothing memoized for these
    users yet) answers what the same call answers outside it."""
    users = range(5, USERS + 1, USERS // 50)  # 5, 15, ..., 495: none fed by the test above
    read_only: dict[tuple[int, datetime], list[tuple]] = {}
    with psycopg.connect(pair.primary.dsn()) as conn:
        for user_id in users:
            for at in INSTANTS:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
                    read_only[user_id, at] = feed_rows(conn, user_id, at)
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        for (user_id, at), rows in read_only.items():
            assert rows, (user_id, at)
            assert rows == feed_rows(conn, user_id, at), (user_id, at)


# ----------------------------------------------------------------------- API --
def test_the_standby_serves_the_feeds_written_ahead_and_ranks_stale_ones_live(pair: Pair):
    """The primary's served feeds (its nightly wrote them) replay on the standby, which serves them; a
    weights change makes them stale there too (ranked live, equal to the primary), until the refresh."""
    from batch.feeds import refresh_feeds

    lsn_caught_up(pair)
    select = "SELECT rank, outfit_id, title, headline FROM ootd._served(%s, %s, 3)"
    with (
        psycopg.connect(pair.primary.dsn(), autocommit=True) as primary,
        psycopg.connect(pair.replica.dsn(), autocommit=True) as standby,
    ):
        # the local date the fixture's last nightly wrote, today: users whose local day is not 24 hours long
        # today (a clock change) have no row for it and are left out
        users = [
            u
            for (u,) in primary.execute(
                "SELECT id FROM ootd.users WHERE id % 25 = 1 AND (((now() AT TIME ZONE timezone)::date + 1)::timestamp"
                " AT TIME ZONE timezone) - ((now() AT TIME ZONE timezone)::date::timestamp AT TIME ZONE timezone)"
                " = interval '24 hours' ORDER BY id"
            )
        ]
        assert len(users) >= 10
        at = primary.execute("SELECT now() + interval '1 minute'").fetchone()[0]
        served = [u for u in users if standby.execute(select, (u, at)).fetchall()]
        assert len(served) == len(users)  # every one from a row on the standby
        for u in users:
            assert feed_rows(standby, u, at) == feed_rows(primary, u, at)
        primary.execute("UPDATE ootd.scoring_weights SET cosine = 0.8")
        try:
            lsn_caught_up(pair)
            for u in users:
                assert standby.execute(select, (u, at)).fetchall() == []  # stale: ranked live
                assert feed_rows(standby, u, at) == feed_rows(primary, u, at)
        finally:
            primary.execute("UPDATE ootd.scoring_weights SET cosine = DEFAULT")
            refresh_feeds(pair.primary.dsn())
            lsn_caught_up(pair)
        assert all(standby.execute(select, (u, at)).fetchall() for u in users)


def test_readyz_on_the_standby_says_so(pair: Pair):
    lsn_caught_up(pair)
    today = datetime.now(UTC).date().isoformat()
    bodies = {}
    for name, server in (("primary", pair.primary), ("standby", pair.replica)):
        app = create_app(server.dsn(), SECRET, pool_max=1)
        try:
            response = app.test_client().get("/readyz")
        finally:
            app.extensions["ootd"].db.close()
        assert response.status_code == 200, (name, response.get_json())
        bodies[name] = body = response.get_json()
        assert body["status"] == "ready" and body["pool_date"] == today and body["pools"] > 0, body
    assert bodies["primary"]["standby"] is False and bodies["primary"]["replay_lag_s"] is None
    standby = bodies["standby"]
    assert standby["standby"] is True
    assert isinstance(standby["replay_lag_s"], float) and standby["replay_lag_s"] >= 0
    # the durable pools serve a standby; its cache (UNLOGGED) is unreadable
    assert standby["pools"] == bodies["primary"]["pools"]
    assert standby["cached_pools"] == 0 and standby["fallback_pools"] == standby["pools"]


def test_ootd_serve_on_the_standby_serves_feeds_and_says_it_is_a_standby(pair: Pair, tmp_path: Path):
    """A live `ootd serve` with DATABASE_URL = the standby: it starts (its cache refill is skipped there),
    /readyz says standby, a feed is 200 and a like (a write) is a 503 read_only, not a 500."""
    lsn_caught_up(pair)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("OOTD_HOME", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(DATABASE_URL=pair.replica.dsn(), OOTD_API_SECRET=SECRET, TMPDIR=str(tmp_path))
    with (tmp_path / "serve.log").open("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"

        def get(path: str, **kwargs) -> tuple[int, dict]:
            request = urllib.request.Request(base + path, **kwargs)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get("/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"ootd serve on the standby did not start:\n{log.read()}")
                time.sleep(0.1)
            status, ready = get("/readyz")
            assert status == 200 and ready["standby"] is True, ready
            bearer = {"Authorization": f"Bearer {issue_token(42, SECRET)}"}
            status, feed = get("/v1/users/42/feed?at=2026-04-20T15:00:00Z", headers=bearer)
            assert status == 200 and len(feed["items"]) == 3, feed
            status, error = get(
                "/v1/users/42/likes",
                data=json.dumps({"outfit_id": feed["items"][0]["outfit_id"]}).encode(),
                headers={**bearer, "Content-Type": "application/json"},
                method="POST",
            )
            assert status == 503 and error["error"]["code"] == "read_only", (status, error)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- lifecycle --
def test_db_stop_stops_the_replica_too_and_replica_start_resumes_it(pair: Pair):
    """Last in this module: stops both servers, then starts them again from the existing replica."""
    env = {"OOTD_HOME": str(pair.home)}
    stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines() == ["replica stopped", "stopped"]
    assert not pair.replica.is_running() and not pair.primary.is_running()
    assert run_cli("db", "replica", "stop", env=env).stdout.strip() == "not running"

    started = run_cli("db", "replica", "start", env=env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == pair.replica.dsn()
    assert started.stderr.splitlines() == [
        f"ootd: started the embedded PostgreSQL in {pair.home} (set OOTD_HOME to use another)",
        f"ootd: started the replica (hot standby) in {pair.replica.home}",  # not rebuilt: resumed
    ]
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.after_restart AS SELECT 42 AS answer")
    lsn_caught_up(pair)
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT answer FROM public.after_restart").fetchone() == (42,)

    assert run_cli("db", "replica", "stop", env=env).stdout.strip() == "stopped"
    assert pair.primary.is_running() and not pair.replica.is_running()
