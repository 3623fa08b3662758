"""Read replicas in the API (api/replicas.py) on a real streaming hot standby of the embedded server.

Feeds go to the replica and equal the primary's; a like's commit LSN (header or cookie) sends the next feed
to the primary while the replica has not replayed it (its replay paused: deterministic lag); a replica that
is down, lagging past the bound, or stopped mid-load is skipped without one failed request; /readyz and
/metrics show each replica's state, lag and the feeds it served.

One primary per module (its own home): migrated, 300 users, the offline pools of DAY and of today (for
/readyz), then its replica (pg_basebackup -R), caught up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest

from api.app import create_app
from api.auth import issue_token
from api.replicas import ReplicaSettings, parse_lsn, settings_from_env
from db import REPO_ROOT
from tests.conftest import Pair, replica_pair

DAY = date(2026, 4, 20)
USERS = 300
AT = "2026-04-20T15:00:00Z"
SECRET = "test-secret-" + "q" * 60
NOWHERE = "postgresql://postgres@/ootd?host=/nonexistent-ootd-socket-dir&port=5999"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with replica_pair(tmp_path_factory.mktemp("replicas-home"), USERS, 7, DAY) as both:
        yield both


@contextmanager
def app_for(pair: Pair, *urls: str, max_lag_s: float = 3600.0, check_s: float = 1.0):
    """The API over the primary, feeds on `urls` (none: primary only)."""
    settings = ReplicaSettings(tuple(urls), max_lag_s, check_s) if urls else None
    app = create_app(pair.primary.dsn(), SECRET, pool_max=2, replicas=settings)
    try:
        yield app
    finally:
        app.extensions["ootd"].close()


@contextmanager
def replay_paused(pair: Pair):
    """The replica receives WAL but replays none of it: it lags, deterministically, until the block ends."""
    with psycopg.connect(pair.replica.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def bearer(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user_id, SECRET)}"}


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def primary_feed(pair: Pair, user_id: int, limit: int = 3) -> list[tuple]:
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        return conn.execute(
            "SELECT outfit_id, score FROM ootd.feed(%s, %s, %s)", (user_id, datetime.fromisoformat(AT), limit)
        ).fetchall()


def items_of(body: dict) -> list[tuple]:
    return [(item["outfit_id"], item["score"]) for item in body["items"]]


# ------------------------------------------------------------------ routing --
def test_feeds_from_the_replica_equal_the_primarys(pair: Pair):
    """40 users' feeds through the replica-routed app, then through a primary-only app: the replica served
    every one (Ootd-Served-By), and each equals the primary's, body for body."""
    pair.replica.wait_for_replay()
    users = range(1, USERS + 1, USERS // 40)
    via_replica = {}
    with app_for(pair, pair.replica.dsn()) as app:
        client = app.test_client()
        for user_id in users:
            response = client.get(f"/v1/users/{user_id}/feed?at={AT}&limit=5", headers=bearer(user_id))
            assert response.status_code == 200, response.get_json()
            assert response.headers["Ootd-Served-By"] == "replica-1"
            via_replica[user_id] = response.get_json()
        metrics = client.get("/metrics").get_data(as_text=True)
        assert metric(metrics, "ootd_replica_state", replica="replica-1", state="up") == 1
        assert metric(metrics, "ootd_replica_state", replica="replica-1", state="down") == 0
        assert metric(metrics, "ootd_feed_routed_total", backend="replica-1") >= len(users)
    with app_for(pair) as app:
        client = app.test_client()
        for user_id, body in via_replica.items():
            response = client.get(f"/v1/users/{user_id}/feed?at={AT}&limit=5", headers=bearer(user_id))
            assert "Ootd-Served-By" not in response.headers  # no replicas: no routing to report
            assert response.get_json() == body, user_id


def test_a_feed_from_the_replica_reports_the_experiment_variant_the_primary_started(pair: Pair):
    """An experiment started (then ended) on the primary: once replayed, the replica's feeds name each user's
    variant (ootd.experiment_of on the primary), then null again; the bodies equal the primary's."""
    users = range(1, 21)
    with app_for(pair, pair.replica.dsn()) as app, psycopg.connect(pair.primary.dsn(), autocommit=True) as admin:
        client = app.test_client()

        def feeds() -> dict[int, dict]:
            pair.replica.wait_for_replay()
            bodies = {}
            for user_id in users:
                response = client.get(f"/v1/users/{user_id}/feed?at={AT}", headers=bearer(user_id))
                assert response.status_code == 200, response.get_json()
                assert response.headers["Ootd-Served-By"] == "replica-1"
                bodies[user_id] = response.get_json()
            return bodies

        assert {body["variant"] for body in feeds().values()} == {None}
        variants = json.dumps({"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}})
        admin.execute("SELECT * FROM ootd.start_experiment('replica_cosine_up', %s::jsonb)", (variants,))
        try:
            assigned = {
                u: admin.execute("SELECT variant FROM ootd.experiment_of(%s)", (u,)).fetchone()[0] for u in users
            }
            served = feeds()
            assert {u: body["variant"] for u, body in served.items()} == assigned
            assert set(assigned.values()) == {"control", "more_cosine"}
            for user_id, body in served.items():
                assert items_of(body) == primary_feed(pair, user_id), user_id
        finally:
            admin.execute("SELECT * FROM ootd.end_experiment('replica_cosine_up')")
        assert {body["variant"] for body in feeds().values()} == {None}


def test_feeds_alternate_between_replicas_and_skip_one_that_does_not_exist(pair: Pair):
    """Two replicas, the second unreachable: every request succeeds, the live replica serves those whose turn
    it is, the primary the others; /readyz says which replica is down and why."""
    pair.replica.wait_for_replay()
    with app_for(pair, pair.replica.dsn(), NOWHERE) as app:
        client = app.test_client()
        served = Counter()
        for user_id in range(1, 21):
            response = client.get(f"/v1/users/{user_id}/feed?at={AT}", headers=bearer(user_id))
            assert response.status_code == 200, response.get_json()
            served[response.headers["Ootd-Served-By"]] += 1
        assert served == {"replica-1": 20}  # replica-2's turns fall through to the next replica, replica-1
        ready = client.get("/readyz").get_json()
        states = {r["name"]: r for r in ready["replicas"]}
        assert states["replica-1"]["state"] == "up" and states["replica-1"]["feeds"] >= 20
        assert states["replica-2"]["state"] == "down" and states["replica-2"]["lag_s"] is None
        assert "cannot connect" in states["replica-2"]["detail"]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert metric(metrics, "ootd_replica_state", replica="replica-2", state="down") == 1
        assert metric(metrics, "ootd_replica_skipped_total", replica="replica-2", reason="down") >= 10


# ---------------------------------------------------------- read-your-writes --
def test_a_like_then_feed_reads_the_like_from_the_primary_while_the_replica_is_paused(pair: Pair):
    """Replay paused: the replica is up (lag bound 1 h) but behind the like.  The like answers its commit LSN;
    a feed that carries it (header, or the cookie) comes from the primary and reflects the like, while a feed
    without it still comes from the (stale) replica.  Once replay resumes, the same LSN is served by the replica."""
    user_id = 17
    pair.replica.wait_for_replay()
    with app_for(pair, pair.replica.dsn()) as app:
        client = app.test_client(use_cookies=False)
        path = f"/v1/users/{user_id}/feed?at={AT}&limit=5"
        before = client.get(path, headers=bearer(user_id))
        assert before.headers["Ootd-Served-By"] == "replica-1"
        before_items = items_of(before.get_json())
        skipped_before = metric(
            client.get("/metrics").get_data(as_text=True),
            "ootd_replica_skipped_total",
            replica="replica-1",
            reason="behind",
        )
        with replay_paused(pair):
            liked = []
            for item in before.get_json()["items"][:3]:  # three likes: the profile (and the scores) move
                response = client.post(
                    f"/v1/users/{user_id}/likes", json={"outfit_id": item["outfit_id"]}, headers=bearer(user_id)
                )
                assert response.status_code == 201, response.get_json()
                lsn = response.headers["Ootd-Min-LSN"]
                assert parse_lsn(lsn) is not None, lsn
                cookie = response.headers["Set-Cookie"]
                assert cookie.startswith(f"ootd_min_lsn={lsn};") and f"Path=/v1/users/{user_id}/" in cookie, cookie
                assert "HttpOnly" in cookie and "Max-Age=" in cookie, cookie
                liked.append(lsn)
            assert [parse_lsn(x) for x in liked] == sorted(parse_lsn(x) for x in liked)
            expected = primary_feed(pair, user_id, 5)
            assert expected != before_items, "three likes should change the feed's scores"

            stale = client.get(path, headers=bearer(user_id))  # no LSN: any replica will do
            assert stale.headers["Ootd-Served-By"] == "replica-1"
            assert items_of(stale.get_json()) == before_items  # the replica has not replayed the likes

            fresh = client.get(path, headers={**bearer(user_id), "Ootd-Min-LSN": liked[-1]})
            assert fresh.status_code == 200
            assert fresh.headers["Ootd-Served-By"] == "primary"
            assert items_of(fresh.get_json()) == expected

            with_cookie = app.test_client()  # a browser: the cookie the like set comes back by itself
            like = with_cookie.post(
                f"/v1/users/{user_id}/likes", json={"outfit_id": before_items[0][0]}, headers=bearer(user_id)
            )
            assert like.status_code == 200  # already liked: still a commit point to read from
            by_cookie = with_cookie.get(path, headers=bearer(user_id))
            assert by_cookie.headers["Ootd-Served-By"] == "primary"
            assert items_of(by_cookie.get_json()) == expected
            other = with_cookie.get(f"/v1/users/{user_id + 1}/feed?at={AT}", headers=bearer(user_id + 1))
            assert other.headers["Ootd-Served-By"] == "replica-1"  # the cookie's path is the liking user's

            metrics = client.get("/metrics").get_data(as_text=True)
            assert (
                metric(metrics, "ootd_replica_skipped_total", replica="replica-1", reason="behind")
                == skipped_before + 2
            )
            assert metric(metrics, "ootd_replica_state", replica="replica-1", state="up") == 1

        pair.replica.wait_for_replay()
        caught_up = client.get(path, headers={**bearer(user_id), "Ootd-Min-LSN": liked[-1]})
        assert caught_up.headers["Ootd-Served-By"] == "replica-1"
        assert items_of(caught_up.get_json()) == expected

        for outfit_id, _ in before_items[:3]:  # leave the user as found
            assert client.delete(f"/v1/users/{user_id}/likes/{outfit_id}", headers=bearer(user_id)).status_code == 200


def test_a_malformed_min_lsn_is_a_400_and_a_future_one_is_served_by_the_primary(pair: Pair):
    pair.replica.wait_for_replay()
    path = f"/v1/users/5/feed?at={AT}"
    for urls in ((pair.replica.dsn(),), ()):  # the same contract with and without replicas
        with app_for(pair, *urls) as app:
            client = app.test_client()
            for bad in ("nope", "0/", "/1", "123456789/0", "0/0x1", "-1/0", " 0/1", "0/1;"):
                response = client.get(path, headers={**bearer(5), "Ootd-Min-LSN": bad})
                assert response.status_code == 400, (bad, response.get_json())
                assert response.get_json()["error"]["code"] == "invalid_min_lsn"
                assert "Ootd-Min-LSN header" in response.get_json()["error"]["message"]
            client.set_cookie("ootd_min_lsn", "garbage", path="/v1/users/5/")
            response = client.get(path, headers=bearer(5))
            assert response.status_code == 400 and "ootd_min_lsn cookie" in response.get_json()["error"]["message"]
            client.delete_cookie("ootd_min_lsn", path="/v1/users/5/")
            future = client.get(path, headers={**bearer(5), "Ootd-Min-LSN": "FFFFFFFF/FFFFFFFF"})
            assert future.status_code == 200
            assert future.headers.get("Ootd-Served-By") == ("primary" if urls else None)
            past = client.get(path, headers={**bearer(5), "Ootd-Min-LSN": "0/0"})
            assert past.status_code == 200
            assert past.headers.get("Ootd-Served-By") == ("replica-1" if urls else None)


# ------------------------------------------------------------------- failure --
def test_a_replica_lagging_past_the_bound_is_skipped_until_it_catches_up(pair: Pair):
    """Lag bound 1 s, checks every 0.2 s: replay paused and a commit on the primary make the replica lag;
    /readyz and /metrics say lagging, feeds come from the primary; resumed, it is up and serving again."""
    pair.replica.wait_for_replay()
    with app_for(pair, pair.replica.dsn(), max_lag_s=1.0, check_s=0.2) as app:
        client = app.test_client()
        path = f"/v1/users/9/feed?at={AT}"
        assert client.get(path, headers=bearer(9)).headers["Ootd-Served-By"] == "replica-1"
        with replay_paused(pair):
            with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS public.tick (at timestamptz)")
                conn.execute("INSERT INTO public.tick VALUES (now())")
            deadline = time.monotonic() + 30
            while (replica := client.get("/readyz").get_json()["replicas"][0])["state"] != "lagging":
                assert time.monotonic() < deadline, replica
                time.sleep(0.2)
            assert replica["lag_s"] > 1.0 and "OOTD_REPLICA_MAX_LAG_S" in replica["detail"]
            time.sleep(0.3)  # past the request path's cached check too
            response = client.get(path, headers=bearer(9))
            assert response.status_code == 200 and response.headers["Ootd-Served-By"] == "primary"
            metrics = client.get("/metrics").get_data(as_text=True)
            assert metric(metrics, "ootd_replica_state", replica="replica-1", state="lagging") == 1
            assert metric(metrics, "ootd_replica_lag_seconds", replica="replica-1") > 1.0
            assert metric(metrics, "ootd_replica_skipped_total", replica="replica-1", reason="lagging") >= 1
        pair.replica.wait_for_replay()
        deadline = time.monotonic() + 30
        while client.get("/readyz").get_json()["replicas"][0]["state"] != "up":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get(path, headers=bearer(9)).headers["Ootd-Served-By"] == "replica-1"


def test_replica_settings_come_from_the_environment():
    assert settings_from_env({}) is None
    assert settings_from_env({"DATABASE_READ_URLS": " , "}) is None
    settings = settings_from_env({"DATABASE_READ_URLS": "postgresql://a/x, postgresql://b/x"})
    assert settings == ReplicaSettings(("postgresql://a/x", "postgresql://b/x"), 10.0, 1.0)
    assert settings_from_env(
        {"DATABASE_READ_URLS": "postgresql://a/x", "OOTD_REPLICA_MAX_LAG_S": "2.5", "OOTD_REPLICA_CHECK_S": "0.5"}
    ) == ReplicaSettings(("postgresql://a/x",), 2.5, 0.5)
    for bad in ("0", "-1", "ten", "inf", "nan"):
        with pytest.raises(ValueError, match="OOTD_REPLICA_MAX_LAG_S must be a positive number"):
            settings_from_env({"DATABASE_READ_URLS": "postgresql://a/x", "OOTD_REPLICA_MAX_LAG_S": bad})


# ------------------------------------------------------ ootd serve, mid-load --
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for_state(base: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = get(base, "/readyz")
        replica = json.loads(body)["replicas"][0] if status == 200 else None
        if replica is not None and replica["state"] == state:
            return replica
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.2)


def test_stopping_the_replica_mid_load_fails_no_request(pair: Pair, tmp_path: Path):
    """A live `ootd serve` (2 workers x 4 threads) with DATABASE_READ_URLS = the replica, 4 client threads
    asking for feeds without pause: the replica is stopped (fast: its sessions are terminated mid-query)
    and started again.  Not one request fails; the replica served before the stop and after the restart,
    the primary in between; /readyz and /metrics said down, then up."""
    pair.replica.wait_for_replay()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("OOTD_HOME", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(
        DATABASE_URL=pair.primary.dsn(),
        DATABASE_READ_URLS=pair.replica.dsn(),
        OOTD_API_SECRET=SECRET,
        TMPDIR=str(tmp_path),
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2", "--threads", "4"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    stop = threading.Event()
    phase = ["before"]
    outcomes: Counter = Counter()  # (phase, status, served by)
    failures: list[str] = []

    def load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            user_id = i % USERS + 1
            i += 4
            when = phase[0]  # at the start: a request begun once the replica is stopped cannot reach it
            try:
                status, headers, body = get(base, f"/v1/users/{user_id}/feed?at={AT}", bearer(user_id))
            except OSError as exc:
                failures.append(f"user {user_id}: {exc}")
                continue
            outcomes[when, status, headers.get("Ootd-Served-By")] += 1
            if status != 200:
                failures.append(f"user {user_id}: {status} {body[:200]!r}")

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(base, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ootd serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        assert wait_for_state(base, "up")["lag_s"] is not None

        threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        phase[0] = "stopping"
        assert pair.replica.stop("fast")
        phase[0] = "down"
        down = wait_for_state(base, "down")
        assert down["lag_s"] is None and down["detail"]
        _, _, text = get(base, "/metrics")
        assert metric(text.decode(), "ootd_replica_state", replica="replica-1", state="down") == 1
        time.sleep(1.5)
        phase[0] = "starting"
        pair.primary.start_replica()
        pair.replica.wait_for_replay()
        up = wait_for_state(base, "up")
        phase[0] = "after"
        time.sleep(2.0)  # > the check interval: every worker has seen it up again
        deadline = time.monotonic() + 20  # on a loaded machine: until the replica served again, bounded
        while not any(n for (when, _, by), n in list(outcomes.items()) if when == "after" and by == "replica-1"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        _, _, text = get(base, "/metrics")
        text = text.decode()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not pair.replica.is_running():
            pair.primary.start_replica()

    total = sum(outcomes.values())
    assert not failures, f"{len(failures)} of {total} requests failed, the first: {failures[0]}"
    assert total > 100, outcomes
    served = Counter()
    for (when, status, backend), n in outcomes.items():
        assert status == 200
        served[when, backend] += n
    assert served["before", "replica-1"] > 0 and served["before", "primary"] == 0, served
    assert served["down", "primary"] > 0 and served["down", "replica-1"] == 0, served
    assert served["after", "replica-1"] > 0, served
    assert up["state"] == "up" and up["feeds"] >= served["before", "replica-1"]
    assert metric(text, "ootd_replica_state", replica="replica-1", state="up") == 1
    assert metric(text, "ootd_feed_routed_total", backend="replica-1") >= served["before", "replica-1"]
    assert metric(text, "ootd_feed_routed_total", backend="primary") >= served["down", "primary"]
    assert metric(text, "ootd_replica_skipped_total", replica="replica-1", reason="down") > 0
    assert metric(text, "ootd_http_requests_total", route="/v1/users/<user_id>/feed", status="500") == 0
