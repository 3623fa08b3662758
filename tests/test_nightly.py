"""The nightly batch through the real `openai` client against a local server.

K chat requests for K clusters, zero on a re-run, retries that honour
Retry-After, failures that leave the previous pool in place and are recorded
in the ledger, a killed run that resumes without repeating clusters, and
"no repeats across pools": each prompt lists the titles taken by the pools
within 3 days, its own archetype x weather's first (ootd.taken_titles, read
once per run), and a pool using one is invalid output (tests/test_titles.py
has the rest).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

import batch.clusters
from batch.llm import OpenAIEmbedder, OpenAIStylist, make_client
from batch.nightly import NightlyBusy, NightlyConfig, run_nightly
from batch.titles import MAX_PROMPT_TITLES
from batch.weather import Forecast
from db import REPO_ROOT
from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI, avoided_titles

DAY = date(2026, 4, 20)


class FixedWeather:
    """Every city has the same weather: clusters are then the same every day."""

    name = "fixed"

    def __init__(self, condition: str = "Sunny"):
        self.condition = condition

    def forecast(self, cities, day):
        return [Forecast(city=c.name, day=day, condition=self.condition, temp_c=21.0) for c in cities]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def openai_run(
    url: str,
    server: FakeOpenAI,
    day: date = DAY,
    weather=None,
    timeout: float = 10.0,
    max_retries: int = 3,
    concurrency: int = 4,
    wait: bool = True,
):
    client = make_client(timeout, base_url=server.base_url, api_key="test-key")
    config = NightlyConfig(
        day=day,
        llm="openai",
        model="gpt-4o-mini",
        concurrency=concurrency,
        timeout_s=timeout,
        max_retries=max_retries,
        wait=wait,
    )
    return run_nightly(
        url, config, stylist=OpenAIStylist(client, "gpt-4o-mini"), embedder=OpenAIEmbedder(client), weather=weather
    )


def distinct_clusters(conn: psycopg.Connection, day: date = DAY) -> list[str]:
    return [
        r[0]
        for r in conn.execute("SELECT DISTINCT cluster_id FROM ootd.user_clusters(%s) ORDER BY 1", (day,)).fetchall()
    ]


def ledger(conn: psycopg.Connection, cluster_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT kind, attempt, status, http_status FROM ootd.llm_calls WHERE cluster_id = %s ORDER BY kind, attempt",
        (cluster_id,),
    ).fetchall()


def start_nightly_cli(url: str, fake: FakeOpenAI, *, concurrency: int, timeout: int) -> subprocess.Popen:
    """`ootd nightly --llm openai` against the fake server, as a process the test can kill."""
    env = {**os.environ, "DATABASE_URL": url, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.base_url}
    env.pop("OOTD_HOME", None)
    argv = ["nightly", "--date", DAY.isoformat(), "--llm", "openai", "--concurrency", str(concurrency)]
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv, "--timeout", str(timeout)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_exactly_one_chat_request_per_cluster_and_none_on_rerun(seeded_url, fake):
    report = openai_run(seeded_url, fake)
    with psycopg.connect(seeded_url) as conn:
        clusters = distinct_clusters(conn)
        assert 20 <= len(clusters) <= 40
        assert len(fake.chat_requests()) == len(clusters) == report.clusters == report.stored
        assert len(fake.embedding_requests()) == len(clusters)
        prompts = sorted(r.user_text.split(" ", 2)[1] for r in fake.chat_requests())
        assert prompts == clusters  # one request per cluster id, none twice
        assert conn.execute("SELECT count(*) FROM ootd.outfits WHERE pool_date = %s", (DAY,)).fetchone()[0] == 20 * len(
            clusters
        )
        assert conn.execute("SELECT count(*) FROM ootd.pool_cache WHERE pool_date = %s", (DAY,)).fetchone()[
            0
        ] == 20 * len(clusters)
        assert conn.execute("SELECT sum(members) FROM ootd.pools WHERE pool_date = %s", (DAY,)).fetchone()[0] == 10_000
        calls = conn.execute(
            "SELECT count(*), min(prompt_tokens), min(completion_tokens) FROM ootd.llm_calls "
            "WHERE kind = 'chat' AND status = 'ok'"
        ).fetchone()
        assert calls[0] == len(clusters) and calls[1] > 100 and calls[2] > 100

    fake.reset()
    again = openai_run(seeded_url, fake)
    assert fake.requests == []
    assert (again.stored, again.skipped, again.chat_requests) == (0, len(clusters), 0)


def test_request_carries_strict_schema_with_enums_from_the_reference_tables(seeded_url, fake):
    openai_run(seeded_url, fake, weather=FixedWeather())
    body = fake.chat_requests()[0].body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    items = fmt["json_schema"]["schema"]["properties"]["outfits"]["items"]["properties"]
    with psycopg.connect(seeded_url) as conn:
        assert items["category"]["enum"] == [
            r[0] for r in conn.execute("SELECT name FROM ootd.categories ORDER BY name")
        ]
        assert items["color"]["enum"] == [r[0] for r in conn.execute("SELECT name FROM ootd.colors ORDER BY name")]
    assert fake.embedding_requests()[0].body["dimensions"] == 32
    assert len(fake.embedding_requests()[0].body["input"]) == 20


def test_429_then_success_is_retried_after_retry_after(seeded_url, fake):
    cluster = f"{DAY:%Y%m%d}_Minimal_Sunny"
    fake.retry_after = 0.3
    fake.plan("429", match=cluster)
    started = time.perf_counter()
    report = openai_run(seeded_url, fake, weather=FixedWeather())
    assert time.perf_counter() - started >= 0.3
    assert report.failed == []
    with psycopg.connect(seeded_url) as conn:
        assert ledger(conn, cluster) == [("chat", 1, "error", 429), ("chat", 2, "ok", 200), ("embedding", 1, "ok", 200)]
        assert conn.execute("SELECT count(*) FROM ootd.outfits WHERE cluster_id = %s", (cluster,)).fetchone()[0] == 20


def test_timeout_is_retried(seeded_url, fake):
    cluster = f"{DAY:%Y%m%d}_Glam_Sunny"
    fake.slow_seconds = 2.0
    fake.plan("timeout", match=cluster)
    report = openai_run(seeded_url, fake, weather=FixedWeather(), timeout=0.5)
    assert report.failed == []
    with psycopg.connect(seeded_url) as conn:
        assert ledger(conn, cluster)[:2] == [("chat", 1, "error", None), ("chat", 2, "ok", 200)]
        assert (
            conn.execute(
                "SELECT error FROM ootd.llm_calls WHERE cluster_id = %s AND attempt = 1 AND kind = 'chat'", (cluster,)
            ).fetchone()[0]
            == "request timed out"
        )


@pytest.mark.parametrize(
    "behaviour, expected_rows, error_part",
    [
        ("500", [("chat", 1, "error", 500), ("chat", 2, "error", 500), ("chat", 3, "error", 500)], "HTTP 500"),
        ("invalid_json", [("chat", 1, "invalid", 200), ("chat", 2, "invalid", 200)], "response is not valid JSON"),
        (
            "wrong_count",
            [("chat", 1, "invalid", 200), ("chat", 2, "invalid", 200)],
            "expected 20 outfits (10 Daytime, 10 NightOut), got 19 (9 Daytime, 10 NightOut)",
        ),
        ("bad_enum", [("chat", 1, "invalid", 200), ("chat", 2, "invalid", 200)], "is not in the color enum"),
        ("duplicate_titles", [("chat", 1, "invalid", 200), ("chat", 2, "invalid", 200)], "duplicate title"),
        (
            "repeat_title",
            [("chat", 1, "invalid", 200), ("chat", 2, "invalid", 200)],
            "titles already taken by other pools within 3 days: ",
        ),
    ],
)
def test_failing_cluster_keeps_its_previous_pool_and_is_recorded(
    seeded_url, fake, behaviour, expected_rows, error_part
):
    weather = FixedWeather()
    yesterday, cluster_today = DAY - timedelta(days=1), f"{DAY:%Y%m%d}_Classic_Sunny"
    openai_run(seeded_url, fake, day=yesterday, weather=weather)
    with psycopg.connect(seeded_url) as conn:
        before = conn.execute(
            "SELECT id, title FROM ootd.outfits WHERE cluster_id = %s ORDER BY id",
            (f"{yesterday:%Y%m%d}_Classic_Sunny",),
        ).fetchall()
    assert len(before) == 20

    fake.reset()
    fake.always(behaviour, match=cluster_today)
    report = openai_run(seeded_url, fake, weather=weather, max_retries=2)
    assert [c for c, _ in report.failed] == [cluster_today]
    assert error_part in report.failed[0][1]
    with psycopg.connect(seeded_url) as conn:
        assert ledger(conn, cluster_today) == expected_rows
        errors = [
            r[0] for r in conn.execute("SELECT error FROM ootd.llm_calls WHERE cluster_id = %s", (cluster_today,))
        ]
        assert all(error_part in e for e in errors)
        assert (
            conn.execute("SELECT count(*) FROM ootd.pools WHERE cluster_id = %s", (cluster_today,)).fetchone()[0] == 0
        )
        assert (
            conn.execute("SELECT count(*) FROM ootd.outfits WHERE cluster_id = %s", (cluster_today,)).fetchone()[0] == 0
        )
        assert (
            conn.execute(
                "SELECT id, title FROM ootd.outfits WHERE cluster_id = %s ORDER BY id",
                (f"{yesterday:%Y%m%d}_Classic_Sunny",),
            ).fetchall()
            == before
        )
        stored_today = conn.execute("SELECT count(*) FROM ootd.pools WHERE pool_date = %s", (DAY,)).fetchone()[0]
        assert stored_today == report.clusters - 1


def test_invalid_output_is_retried_once_with_the_problem_in_the_prompt(seeded_url, fake):
    cluster = f"{DAY:%Y%m%d}_Edgy_Sunny"
    fake.plan("wrong_count", match=cluster)
    report = openai_run(seeded_url, fake, weather=FixedWeather())
    assert report.failed == []
    requests = [r for r in fake.chat_requests() if cluster in r.user_text]
    assert len(requests) == 2
    assert "Your previous answer was rejected: expected 20 outfits" in requests[1].user_text
    with psycopg.connect(seeded_url) as conn:
        assert ledger(conn, cluster)[:2] == [("chat", 1, "invalid", 200), ("chat", 2, "ok", 200)]


def test_killed_run_resumes_without_repeating_clusters(seeded_url, fake):
    fake.slow_seconds = 0.4
    fake.always("timeout")  # every answer arrives after 0.4 s (the client waits 30 s)
    proc = start_nightly_cli(seeded_url, fake, concurrency=1, timeout=30)
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(seeded_url, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM ootd.pools").fetchone()[0] < 3:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    with psycopg.connect(seeded_url) as conn:
        done_before = {r[0] for r in conn.execute("SELECT cluster_id FROM ootd.pools")}
        clusters = distinct_clusters(conn)
    assert 3 <= len(done_before) < len(clusters)

    fake.reset()
    report = openai_run(seeded_url, fake)
    asked = {r.user_text.split(" ", 2)[1] for r in fake.chat_requests()}
    assert asked == set(clusters) - done_before
    assert report.skipped == len(done_before)
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.pools").fetchone()[0] == len(clusters)
        repeated = conn.execute(
            "SELECT cluster_id FROM ootd.llm_calls WHERE kind = 'chat' AND status = 'ok' "
            "GROUP BY cluster_id HAVING count(*) > 1"
        ).fetchall()
        assert repeated == []


def test_concurrent_runs_are_serialized_by_the_advisory_lock(seeded_url, fake):
    fake.slow_seconds = 0.2
    fake.always("timeout")
    first = threading.Thread(
        target=openai_run, args=(seeded_url, fake), kwargs={"weather": FixedWeather(), "concurrency": 1}
    )
    first.start()
    try:
        deadline = time.monotonic() + 30
        while not fake.chat_requests():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(NightlyBusy, match="another `ootd nightly` run is in progress"):
            openai_run(seeded_url, fake, weather=FixedWeather(), wait=False)
        requests_before_second = None
        second = openai_run(seeded_url, fake, weather=FixedWeather())  # waits for the first
        requests_before_second = len(fake.chat_requests())
    finally:
        first.join(60)
    assert second.chat_requests == 0 and second.stored == 0
    assert requests_before_second == second.clusters  # only the first run asked the LLM


def test_offline_run_calls_the_offline_stylist_once_per_cluster(seeded_url):
    report = run_nightly(seeded_url, NightlyConfig(day=DAY, llm="offline"))
    with psycopg.connect(seeded_url) as conn:
        clusters = distinct_clusters(conn)
        rows = conn.execute(
            "SELECT provider, kind, count(*), count(DISTINCT cluster_id) FROM ootd.llm_calls GROUP BY 1, 2"
        ).fetchall()
        assert rows == [("offline", "chat", len(clusters), len(clusters))]
        cost = conn.execute(
            "SELECT clusters, chat_calls, users_served, naive_calls, est_cost_usd, "
            "cost_at_reference_usd > 0, naive_cost_at_reference_usd > cost_at_reference_usd * 100 "
            "FROM ootd.llm_cost_daily WHERE pool_date = %s",
            (DAY,),
        ).fetchone()
        assert cost == (len(clusters), len(clusters), 10_000, 10_000, 0, True, True)
    assert report.stored == len(clusters) and report.chat_requests == len(clusters)


def test_cache_refresh_does_not_wait_for_readers(seeded_url):
    run_nightly(seeded_url, NightlyConfig(day=DAY, llm="offline"), weather=FixedWeather())
    with psycopg.connect(seeded_url) as reader, psycopg.connect(seeded_url) as writer:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        seen = reader.execute("SELECT count(*) FROM ootd.pool_cache WHERE pool_date = %s", (DAY,)).fetchone()[0]
        writer.execute("SET lock_timeout = '2s'")
        refreshed = writer.execute("SELECT ootd.refresh_pool_cache(%s)", (DAY,)).fetchone()[0]
        writer.commit()
        assert refreshed == seen == 200
        # the open reader still sees its snapshot: never a half-filled pool
        assert reader.execute("SELECT count(*) FROM ootd.pool_cache WHERE pool_date = %s", (DAY,)).fetchone()[0] == 200


def test_store_pool_rejects_partial_pools_and_overwrites(seeded_url):
    run_nightly(seeded_url, NightlyConfig(day=DAY, llm="offline"), weather=FixedWeather())
    with psycopg.connect(seeded_url) as conn:
        with pytest.raises(
            psycopg.errors.InvalidParameterValue, match="must hold 10 Daytime and 10 NightOut outfits, got 1 and 0"
        ):
            conn.execute(
                "SELECT ootd.store_pool(%s, %s, 'offline', 'x', 1, %s)",
                (
                    DAY + timedelta(days=1),
                    f"{DAY + timedelta(days=1):%Y%m%d}_Minimal_Sunny",
                    '[{"daypart": "Daytime"}]',
                ),
            )
        conn.rollback()
        outfits = conn.execute(
            "SELECT jsonb_agg(jsonb_build_object('daypart', daypart, 'title', title, 'category', "
            "category, 'color', color, 'pieces', pieces, 'vibe', vibe, 'trend', trend, 'dare', dare, "
            "'reason', reason, 'embedding', embedding::text::jsonb) ORDER BY slot) FROM ootd.outfits "
            "WHERE cluster_id = %s",
            (f"{DAY:%Y%m%d}_Minimal_Sunny",),
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation, match="already exists"):
            conn.execute(
                "SELECT ootd.store_pool(%s, %s, 'offline', 'x', 1, %s)",
                (DAY, f"{DAY:%Y%m%d}_Minimal_Sunny", psycopg.types.json.Jsonb(outfits)),
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="does not match YYYYMMDD_Archetype_Weather"):
            conn.execute("SELECT ootd.store_pool(%s, 'Minimal_Sunny', 'offline', 'x', 1, '[]')", (DAY,))


def test_cli_nightly_errors_are_one_line(seeded_url):
    bad_date = run_cli("nightly", "--date", "2026-13-01", env={"DATABASE_URL": seeded_url})
    assert bad_date.returncode == 2
    assert (
        bad_date.stderr.strip().splitlines()[-1]
        == "ootd nightly: error: argument --date: expected a date as YYYY-MM-DD, got '2026-13-01'"
    )
    no_key = run_cli("nightly", "--llm", "openai", env={"DATABASE_URL": seeded_url})
    assert no_key.returncode == 1
    assert no_key.stderr.strip() == (
        "ootd: error: --llm openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"
    )
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.weather_daily").fetchone()[0] == 0


def test_a_killed_run_leaves_a_ledger_row_for_every_request_the_server_received(seeded_url, fake):
    # Every answer takes 30 s, so requests are in flight when the run is killed.
    fake.slow_seconds = 30
    fake.always("timeout")
    proc = start_nightly_cli(seeded_url, fake, concurrency=4, timeout=60)
    try:
        deadline = time.monotonic() + 60
        while len(fake.chat_requests()) < 4:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    received = len(fake.requests)
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute("SELECT status, latency_ms, count(*) FROM ootd.llm_calls GROUP BY 1, 2").fetchall()
        failed = conn.execute(
            "SELECT failed_calls, chat_calls FROM ootd.llm_cost_daily WHERE pool_date = %s", (DAY,)
        ).fetchone()
    assert received == 4
    assert rows == [("sent", None, 4)]  # recorded before sending, outcome unknown
    assert failed == (4, 4)  # and counted by the cost view: not ok, but billed


def test_ledger_rows_written_before_sending_are_finished_with_the_outcome(seeded_url, fake):
    fake.plan("500", "ok", match="_")
    openai_run(seeded_url, fake, weather=FixedWeather())
    with psycopg.connect(seeded_url) as conn:
        statuses = conn.execute(
            "SELECT status, http_status, count(*) FROM ootd.llm_calls WHERE kind = 'chat' GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
        clusters = len(distinct_clusters(conn))
        assert (
            conn.execute("SELECT count(*) FROM ootd.llm_calls WHERE status = 'sent' OR latency_ms IS NULL").fetchone()[
                0
            ]
            == 0
        )
    assert statuses == [("error", 500, 1), ("ok", 200, clusters)]
    assert len(fake.chat_requests()) == clusters + 1


def test_a_date_far_in_the_future_is_refused_unless_forced(seeded_url):
    with psycopg.connect(seeded_url) as conn:
        today = conn.execute("SELECT current_date").fetchone()[0]
    result = run_cli("nightly", "--date", "9999-12-31", "--llm", "offline", env={"DATABASE_URL": seeded_url})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ootd: error: pool date 9999-12-31 is more than one day after the database's current date {today} "
        "(SQLSTATE 22023)"
    )
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.llm_calls").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ootd.weather_daily").fetchone()[0] == 0
    tomorrow = run_cli(
        "nightly", "--date", str(today + timedelta(days=1)), "--llm", "offline", env={"DATABASE_URL": seeded_url}
    )
    assert tomorrow.returncode == 0, tomorrow.stderr


def test_a_forced_far_future_run_keeps_todays_pools_in_the_cache(seeded_url):
    with psycopg.connect(seeded_url) as conn:
        today = conn.execute("SELECT current_date").fetchone()[0]
    run_nightly(seeded_url, NightlyConfig(day=today, llm="offline"), weather=FixedWeather())
    far = date(9999, 12, 31)
    run_nightly(seeded_url, NightlyConfig(day=far, llm="offline", force=True), weather=FixedWeather())
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        cached = dict(conn.execute("SELECT pool_date, count(*) FROM ootd.pool_cache GROUP BY 1").fetchall())
        assert cached == {today: 200, far: 200}
        # after a crash empties the cache, rehydration works from today, not from the latest pool date
        conn.execute("TRUNCATE ootd.pool_cache")
        assert conn.execute("SELECT ootd.rehydrate_cache()").fetchone()[0] == 200
        assert conn.execute("SELECT ootd.rehydrate_cache()").fetchone()[0] == 0  # nothing missing: no write
        assert dict(conn.execute("SELECT pool_date, count(*) FROM ootd.pool_cache GROUP BY 1").fetchall()) == {
            today: 200
        }


# ------------------------------------------------------------ don't repeat yesterday --


def titles_of(conn: psycopg.Connection, cluster_id: str) -> list[str]:
    return [
        r[0] for r in conn.execute("SELECT title FROM ootd.outfits WHERE cluster_id = %s ORDER BY slot", (cluster_id,))
    ]


def test_each_prompt_lists_every_taken_title_its_clusters_own_first(seeded_url, fake):
    # Minimal/Sunny pools 4 and 3 days before and the day before; a Rainy day in between.
    for days_before, condition in ((4, "Sunny"), (3, "Sunny"), (2, "Rainy"), (1, "Sunny")):
        run_nightly(
            seeded_url,
            NightlyConfig(day=DAY - timedelta(days=days_before), llm="offline"),
            weather=FixedWeather(condition),
        )
    openai_run(seeded_url, fake, weather=FixedWeather("Sunny"))

    def cluster(days_before: int, archetype: str = "Minimal", weather: str = "Sunny") -> str:
        return f"{DAY - timedelta(days=days_before):%Y%m%d}_{archetype}_{weather}"

    with psycopg.connect(seeded_url) as conn:
        own = titles_of(conn, cluster(1)) + titles_of(conn, cluster(3))  # the day before first
        older = set(titles_of(conn, cluster(4)))
        window = {
            r[0]
            for r in conn.execute(
                "SELECT title FROM ootd.outfits WHERE pool_date BETWEEN %s AND %s", (DAY - timedelta(3), DAY)
            )
        }
        today = titles_of(conn, cluster(0))
    prompts = {r.user_text.split(" ", 2)[1]: r.user_text for r in fake.chat_requests()}
    listed = avoided_titles(prompts[cluster(0)])
    assert listed[:20] == sorted(own[:20]) and listed[20:40] == sorted(own[20:])  # its own, most recent day first
    assert len(listed) > 40 and set(listed) <= window - set(today)  # then other clusters', none older
    assert not set(listed) & older
    for text in prompts.values():  # 600 titles of the 3 days before, and those of today's pools stored first
        taken = avoided_titles(text)
        assert len(taken) == MAX_PROMPT_TITLES and set(taken) <= window and "more titles are taken too" in text
    assert len(today) == 20 and not {t.casefold() for t in today} & {t.casefold() for t in window - set(today)}


def test_taken_titles_of_hand_made_pools_and_store_pool_refusing_one(db_url):
    def pool(tag: str) -> list[str]:
        return [f"{tag} Dress {i:02}" for i in range(20)]

    with psycopg.connect(db_url) as conn:
        store(conn, DAY - timedelta(days=4), "Minimal", "Sunny", pool("Old"))  # too old
        store(conn, DAY - timedelta(days=3), "Minimal", "Sunny", pool("Third"))
        store(conn, DAY - timedelta(days=1), "Glam", "Rainy", pool("First"))
        store(conn, DAY, "Edgy", "Sunny", pool("Today"))  # the day itself
        store(conn, DAY + timedelta(days=3), "Minimal", "Sunny", pool("After"))  # within 3 days after
        store(conn, DAY + timedelta(days=4), "Minimal", "Sunny", pool("Later"))  # too late
        conn.commit()
        rows = conn.execute("SELECT title, pool_date, cluster_id FROM ootd.taken_titles(%s)", (DAY,)).fetchall()
        assert [r[0] for r in rows] == pool("Today") + pool("First") + pool("After") + pool("Third")  # nearest first
        assert {r[2] for r in rows} == {
            f"{DAY:%Y%m%d}_Edgy_Sunny",
            f"{DAY - timedelta(days=1):%Y%m%d}_Glam_Rainy",
            f"{DAY + timedelta(days=3):%Y%m%d}_Minimal_Sunny",
            f"{DAY - timedelta(days=3):%Y%m%d}_Minimal_Sunny",
        }
        # another cluster of the day, any archetype and weather: one title of a pool 3 days before, in any case
        with pytest.raises(psycopg.errors.ExclusionViolation) as refused:
            store(conn, DAY, "Classic", "Cold", pool("New")[:7] + ["  third   DRESS 05 "] + pool("New")[8:])
        assert refused.value.diag.message_primary == (
            f"pool {DAY:%Y%m%d}_Classic_Cold uses titles already taken by pools within 3 days: "
            f'"  third   DRESS 05 " (outfit 8, in {DAY - timedelta(days=3):%Y%m%d}_Minimal_Sunny)'
        )
        conn.rollback()
        store(conn, DAY, "Classic", "Cold", pool("New")[:7] + ["Old Dress 05"] + pool("New")[8:])  # 4 days: free
        conn.commit()
        assert conn.execute("SELECT count(*) FROM ootd.pools WHERE pool_date = %s", (DAY,)).fetchone()[0] == 2
        conn.execute("SET ROLE ootd_batch")  # the batch's role may call it (and store_pool, which uses it)
        assert len(conn.execute("SELECT * FROM ootd.taken_titles(%s)", (DAY,)).fetchall()) == 100
        with pytest.raises(psycopg.errors.ExclusionViolation):
            store(conn, DAY + timedelta(days=1), "Classic", "Cold", pool("Today"))


def store(conn: psycopg.Connection, day: date, archetype: str, weather: str, titles: list[str]) -> None:
    """A hand-made pool through ootd.store_pool."""
    outfits = [
        {
            "title": t,
            "daypart": "Daytime" if i < 10 else "NightOut",
            "category": "Dress",
            "color": "Black",
            "pieces": [t.strip(), "Loafers"],
            "vibe": 0.5,
            "trend": 0.5,
            "dare": 0.5,
            "reason": "Because.",
            "embedding": [1.0] + [0.0] * 31,
        }
        for i, t in enumerate(titles)
    ]
    conn.execute(
        "SELECT ootd.store_pool(%s, %s, 'offline', 'm', 1, %s)",
        (day, f"{day:%Y%m%d}_{archetype}_{weather}", Jsonb(outfits)),
    )


def test_taken_titles_are_read_once_per_run_not_per_cluster(seeded_url, fake, monkeypatch):
    run_nightly(seeded_url, NightlyConfig(day=DAY - timedelta(days=1), llm="offline"), weather=FixedWeather())
    queries: list[str] = []
    real_all_rows = batch.clusters.all_rows

    def counting_all_rows(conn, name, *args, **kwargs):
        queries.append(name)
        return real_all_rows(conn, name, *args, **kwargs)

    monkeypatch.setattr(batch.clusters, "all_rows", counting_all_rows)
    report = openai_run(seeded_url, fake, weather=FixedWeather())
    # One request per cluster, plus a retry where an answer used a title taken by a pool the prompt did
    # not list (a prompt lists the likeliest 150): which titles a prompt lists depends on which clusters
    # of the run claimed theirs first, so whether that happens depends on the threads' timing.
    firsts = [r for r in fake.chat_requests() if "Your previous answer was rejected" not in r.user_text]
    assert report.clusters == report.stored == len(firsts) == 10
    for retry in fake.chat_requests():
        if retry not in firsts:
            assert "titles already taken by other pools within 3 days" in retry.user_text
    assert queries.count("taken_titles") == 1 and queries.count("cluster_demand") == 1
    assert all(len(avoided_titles(r.user_text)) == MAX_PROMPT_TITLES for r in fake.chat_requests())


def test_a_repeated_title_is_retried_once_with_the_title_named(seeded_url, fake):
    weather = FixedWeather()
    run_nightly(seeded_url, NightlyConfig(day=DAY - timedelta(days=1), llm="offline"), weather=weather)
    cluster, yesterday = f"{DAY:%Y%m%d}_Edgy_Sunny", f"{DAY - timedelta(days=1):%Y%m%d}_Edgy_Sunny"
    fake.plan("repeat_title", match=cluster)
    report = openai_run(seeded_url, fake, weather=weather)
    assert report.failed == []
    requests = [r for r in fake.chat_requests() if cluster in r.user_text]
    assert [r.behaviour for r in requests] == ["repeat_title", "ok"]
    repeated = avoided_titles(requests[0].user_text)[0]  # answered as "  <it in lower case> "
    rejection = f'titles already taken by other pools within 3 days: "{repeated}" (outfit 5); every title must be new'
    assert f"Your previous answer was rejected: {rejection}. Fix these problems." in requests[1].user_text
    with psycopg.connect(seeded_url) as conn:
        assert ledger(conn, cluster)[:2] == [("chat", 1, "invalid", 200), ("chat", 2, "ok", 200)]
        assert (
            conn.execute(
                "SELECT error FROM ootd.llm_calls WHERE cluster_id = %s AND attempt = 1 AND kind = 'chat'", (cluster,)
            ).fetchone()[0]
            == rejection
        )
        stored = titles_of(conn, cluster)
        assert repeated in titles_of(conn, yesterday)
        assert len(stored) == 20
        assert not {t.casefold() for t in stored} & {t.casefold() for t in titles_of(conn, yesterday)}


def test_offline_runs_on_consecutive_days_never_repeat_a_title_of_any_pool_within_3_days(seeded_url):
    weather = FixedWeather("Cold")
    for d in range(4):
        report = run_nightly(seeded_url, NightlyConfig(day=DAY + timedelta(days=d), llm="offline"), weather=weather)
        assert report.stored == report.clusters == 10 and report.failed == []
    with psycopg.connect(seeded_url) as conn:
        repeats = conn.execute("""
            SELECT o.cluster_id, o.title, b.cluster_id
            FROM ootd.outfits o
            JOIN ootd.outfits b ON b.pool_date BETWEEN o.pool_date - 3 AND o.pool_date
                               AND lower(b.title) = lower(o.title) AND b.id <> o.id""").fetchall()
        compared = conn.execute("""
            SELECT count(*) FROM ootd.pools p JOIN ootd.pools q ON q.archetype = p.archetype
            AND q.weather = p.weather AND q.pool_date BETWEEN p.pool_date - 3 AND p.pool_date - 1""").fetchone()[0]
        per_day = conn.execute(
            "SELECT pool_date, count(DISTINCT cluster_id), count(*) FROM ootd.outfits GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert repeats == []
    assert compared == 10 * (0 + 1 + 2 + 3)  # each pool against each earlier day's (up to 3)
    assert per_day == [(DAY + timedelta(days=d), 10, 200) for d in range(4)]
