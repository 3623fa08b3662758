"""Served feeds (db/sql/06_serving_ahead.sql): ootd.feed reads each user's feed computed ahead, and
what it reads is always exactly the live ranking's answer.

- identity: every user x 3 local instants x 2 local dates, served row against the live ranking, every
  column, and every one of those feeds came from a served row (the fast path is what was tested);
- after each kind of input change (like, unlike, profile update, weights, experiment start / shares /
  end, forced nightly, vocabulary refresh) the next feed equals the live ranking with the new inputs,
  with no wait and no job to run: a user's own change rewrites their rows in its transaction; a
  global one makes every row stale (ranked live) until `ootd feeds refresh`;
- what is not served: another limit, an instant outside the rows' hours, a day with a clock change.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from batch.feeds import feeds_status, refresh_feeds
from batch.nightly import NightlyConfig, run_nightly
from tests.conftest import SERVED_DAY, create_database, drop_database, run_cli

DAY = date.fromisoformat(SERVED_DAY)
COLUMNS = "rank, outfit_id, title, category, color, daypart, score, headline, cluster_id, relaxed_rules, variant"
FEED = f"SELECT {COLUMNS} FROM ootd.feed(%s, %s::timestamptz, %s)"
SERVED = f"SELECT {COLUMNS} FROM ootd._served(%s, %s::timestamptz, %s)"
LIVE = f"SELECT {COLUMNS} FROM ootd._ranked(%s, %s::timestamptz, %s) WHERE rank <= %s ORDER BY rank"
# Every user x 3 local instants (07:30, 13:00: Daytime; 19:45: NightOut) x the 2 local dates the
# nightly wrote (the pool date, and each user's local date now): the served rows, the live ranking's.
INSTANTS = """
    SELECT u.id AS user_id, ((d.day + t.at) AT TIME ZONE u.timezone) AS at,
           ((d.day + 1)::timestamp AT TIME ZONE u.timezone) - (d.day::timestamp AT TIME ZONE u.timezone)
               = interval '24 hours' AS whole_day
    FROM ootd.users u
    CROSS JOIN LATERAL (VALUES (%(day)s::date), ((now() AT TIME ZONE u.timezone)::date)) AS d(day)
    CROSS JOIN (VALUES (time '07:30'), (time '13:00'), (time '19:45')) AS t(at)
    WHERE u.id %% 2 = %(part)s
"""
IDENTITY = f"""
    WITH i AS MATERIALIZED ({INSTANTS}),
    served AS (SELECT i.user_id, i.at, s.* FROM i CROSS JOIN LATERAL ootd._served(i.user_id, i.at, 3) s),
    whole AS (SELECT count(*) AS n FROM i WHERE i.whole_day),
    live AS (SELECT i.user_id, i.at, {COLUMNS.replace("rank", "r.rank", 1)}
             FROM i CROSS JOIN LATERAL ootd._ranked(i.user_id, i.at, 3) r WHERE r.rank <= 3)
    SELECT (SELECT count(*) FROM i) AS instants, (SELECT n FROM whole) AS whole_day_instants,
           (SELECT count(DISTINCT (s.user_id, s.at)) FROM served s) AS served_instants,
           (SELECT count(*) FROM served) AS served_rows, (SELECT count(*) FROM live) AS live_rows,
           (SELECT count(*) FROM (SELECT * FROM served EXCEPT ALL SELECT * FROM live) x) AS served_only,
           (SELECT count(*) FROM (SELECT * FROM live EXCEPT ALL SELECT * FROM served) x) AS live_only
"""


@pytest.fixture(scope="module")
def served_db(pg_server, served_template):
    """10,000 users, the pools of DAY, and the nightly's served feeds (module scope: read-only tests)."""
    name = create_database(pg_server, served_template)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.fixture
def db(served_url):
    """The served template's copy with its first 400 users (a refresh of every user stays quick)."""
    with psycopg.connect(served_url, autocommit=True) as conn:
        conn.execute("DELETE FROM ootd.users WHERE id > 400")
        yield conn


def served(conn, user_id, at, limit=3):
    return conn.execute(SERVED, (user_id, at, limit)).fetchall()


def live(conn, user_id, at, limit=3):
    return conn.execute(LIVE, (user_id, at, limit, limit)).fetchall()


def feed(conn, user_id, at, limit=3):
    return conn.execute(FEED, (user_id, at, limit)).fetchall()


def local_instant(conn, user_id, local: str) -> datetime:
    """The instant of a local wall time of the user's, on DAY when `local` is a time only: the nightly's pool
    date, fixed (no test depends on today's date, which may be a clock change in the user's zone)."""
    return conn.execute(
        "SELECT (CASE WHEN %(local)s ~ '^\\d\\d:' THEN %(day)s::date + %(local)s::time "
        "ELSE %(local)s::timestamp END) AT TIME ZONE u.timezone FROM ootd.users u WHERE u.id = %(id)s",
        {"local": local, "id": user_id, "day": DAY},
    ).fetchone()[0]


def assert_same(conn, user_id, at, *, from_rows: bool):
    """ootd.feed equals the live ranking; and was (or was not) answered from a served row."""
    expected = live(conn, user_id, at)
    assert expected, (user_id, at)
    assert feed(conn, user_id, at) == expected
    assert served(conn, user_id, at) == (expected if from_rows else [])


def test_every_user_at_three_local_instants_on_two_dates_is_served_the_live_ranking(served_db):
    def check(part: int) -> dict:
        with psycopg.connect(served_db, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(IDENTITY, {"day": DAY, "part": part}).fetchone()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, (0, 1)))
    instants = sum(r["instants"] for r in results)
    assert instants == 10_000 * 2 * 3
    assert sum(r["served_only"] + r["live_only"] for r in results) == 0  # every column equal
    assert sum(r["served_rows"] for r in results) == sum(r["live_rows"] for r in results) > 3 * instants * 0.99
    # Every instant had a served row, except on a local date with a clock change (today's may be one).
    assert sum(r["served_instants"] for r in results) == sum(r["whole_day_instants"] for r in results)
    assert sum(r["whole_day_instants"] for r in results) >= instants // 2  # DAY has none


def test_the_nightly_wrote_two_rows_per_user_and_date_and_reports_them(served_db):
    with psycopg.connect(served_db, autocommit=True) as conn:
        dates, rows, stale = conn.execute(
            "SELECT count(DISTINCT (user_id, local_date)), count(*), "
            "count(*) FILTER (WHERE inputs_version <> (SELECT version FROM ootd.serving_inputs)) "
            "FROM ootd.served_feeds"
        ).fetchone()
        today_is_day = DAY == datetime.now(UTC).date()
        assert dates == 10_000 * (1 if today_is_day else 2) or dates > 10_000  # (zones straddle midnight)
        assert rows == 2 * dates and stale == 0
    status = feeds_status(served_db)
    assert (status.current_rows, status.stale_rows) == (rows, 0)


def test_a_like_and_an_unlike_rewrite_the_users_rows_in_the_same_transaction(db):
    user_id = 101
    at = local_instant(db, user_id, "09:00")
    before = feed(db, user_id, at)
    assert served(db, user_id, at) == before  # served ahead
    outfit = before[0][1]
    with db.transaction():
        db.execute("INSERT INTO ootd.likes (user_id, outfit_id) VALUES (%s, %s)", (user_id, outfit))  # no ootd.like
        assert_same(db, user_id, at, from_rows=True)  # already in the writing transaction
    after = feed(db, user_id, at)
    assert after != before  # the liked outfit's score fell (liked_decay)
    assert_same(db, user_id, at, from_rows=True)
    db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit))
    assert feed(db, user_id, at) == before  # the unlike is exact
    assert_same(db, user_id, at, from_rows=True)


def test_a_profile_update_rewrites_the_users_rows(db):
    user_id = 102
    at = local_instant(db, user_id, "20:00")
    before = feed(db, user_id, at)
    city, zone, dna, rules = db.execute(
        "SELECT city, timezone, style_dna, style_rules FROM ootd.users WHERE id = %s", (user_id,)
    ).fetchone()
    category = before[0][3]
    rules = {**rules, "disliked_categories": sorted(set(rules.get("disliked_categories", [])) | {category})}
    db.execute("SELECT * FROM ootd.put_user(%s, %s, %s, %s, %s)", (user_id, city, zone, Jsonb(dna), Jsonb(rules)))
    after = feed(db, user_id, at)
    assert category not in [row[3] for row in after] or after[0][9]  # vetoed now (or relaxed, and says so)
    assert_same(db, user_id, at, from_rows=True)
    db.execute("UPDATE ootd.users SET timezone = 'Pacific/Kiritimati' WHERE id = %s", (user_id,))  # a direct write
    for local in ("08:00", "16:00", "23:30"):
        assert_same(db, user_id, local_instant(db, user_id, local), from_rows=True)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE ootd.scoring_weights SET cosine = 0.9",
        "UPDATE ootd.scoring_weights SET daypart_priority = 0",
        'SELECT * FROM ootd.start_experiment(\'served\', \'{"control": {"share": 0.5}, '
        '"b": {"share": 0.5, "weights": {"cosine": 2}}}\')',
        "INSERT INTO ootd.colors (name, hex, family) VALUES ('Servedteal', '#008080', 'cool')",
        "UPDATE ootd.archetypes SET adjective = 'freshly ' || adjective",
    ],
    ids=["weights", "daypart-weight", "experiment-start", "vocabulary", "archetype-adjective"],
)
def test_a_global_change_makes_every_row_stale_until_refreshed(db, served_url, change):
    users = [103, 104, 201, 377]
    instants = {u: local_instant(db, u, "13:00") for u in users}
    db.execute(change)
    if change.startswith("INSERT INTO ootd.colors"):
        db.execute("SELECT ootd.refresh_vocabulary()")
    for u, at in instants.items():
        assert_same(db, u, at, from_rows=False)  # the next feed: live, with the new inputs
    report = refresh_feeds(served_url, day=DAY, jobs=2)
    assert report.stale_rows == 0 and report.current_rows > 0
    for u, at in instants.items():
        assert_same(db, u, at, from_rows=True)


def test_experiment_shares_and_end_are_input_changes_too(db, served_url):
    user_id, at = 105, local_instant(db, 105, "10:00")
    db.execute(
        "SELECT * FROM ootd.start_experiment('served2', "
        '\'{"control": {"share": 1}, "b": {"share": 0, "weights": {"cosine": 2}}}\')'
    )
    refresh_feeds(served_url, day=DAY)
    assert_same(db, user_id, at, from_rows=True)
    assert feed(db, user_id, at)[0][10] == "control"
    db.execute("SELECT * FROM ootd.set_experiment_shares('served2', '{\"control\": 0.01, \"b\": 0.99}')")
    assert_same(db, user_id, at, from_rows=False)
    variant = db.execute("SELECT variant FROM ootd.experiment_of(%s)", (user_id,)).fetchone()[0]
    assert feed(db, user_id, at)[0][10] == variant
    refresh_feeds(served_url, day=DAY)
    assert_same(db, user_id, at, from_rows=True)
    db.execute("SELECT * FROM ootd.end_experiment('served2')")
    assert_same(db, user_id, at, from_rows=False)
    assert feed(db, user_id, at)[0][10] is None


def test_a_forced_nightly_makes_rows_stale_then_writes_them_again(db, served_url):
    user_id = 106
    later = DAY + timedelta(days=1)
    at = db.execute(
        "SELECT (%s::date + time '12:00') AT TIME ZONE timezone FROM ootd.users WHERE id = %s", (later, user_id)
    ).fetchone()[0]
    before = live(db, user_id, at)  # DAY's pool (the latest up to that date)
    db.execute("DELETE FROM ootd.served_feeds")  # so the nightly's own rows are what is read below
    report = run_nightly(served_url, NightlyConfig(day=later, llm="offline", force=True, serve_ahead=False))
    assert report.served is None
    after = live(db, user_id, at)
    assert after != before and after[0][8].startswith(later.strftime("%Y%m%d"))
    assert served(db, user_id, at) == []
    report = run_nightly(served_url, NightlyConfig(day=later, llm="offline", force=True, serve_ahead=True))
    assert report.served is not None and report.served.stale_rows == 0
    assert_same(db, user_id, at, from_rows=True)


def test_only_the_rows_limit_and_hours_are_served(db):
    user_id = 107
    at = local_instant(db, user_id, "11:00")
    assert served(db, user_id, at, limit=3)
    for limit in (1, 5, 20):
        assert served(db, user_id, at, limit=limit) == []
        assert feed(db, user_id, at, limit) == live(db, user_id, at, limit)
    far = at + timedelta(days=30)  # no row for that local date
    assert served(db, user_id, far) == [] and feed(db, user_id, far) == live(db, user_id, far)


def test_a_day_with_a_clock_change_is_ranked_live(db):
    """2026-03-29 in Europe/Berlin has 23 hours: no row is written for it; the feed still answers."""
    user_id = 108
    db.execute("UPDATE ootd.users SET timezone = 'Europe/Berlin' WHERE id = %s", (user_id,))
    write = "SELECT ootd._materialize(ARRAY[%s]::bigint[], ARRAY[%s::date])"
    assert db.execute(write, (user_id, "2026-03-29")).fetchone()[0] == 0
    assert db.execute(write, (user_id, "2026-03-30")).fetchone()[0] == 2
    for local in ("2026-03-29 01:30", "2026-03-29 03:30", "2026-03-29 18:00"):
        at = local_instant(db, user_id, local)
        assert served(db, user_id, at) == [] and feed(db, user_id, at) == live(db, user_id, at)
    assert_same(db, user_id, local_instant(db, user_id, "2026-03-30 18:00"), from_rows=True)


def test_refresh_rejects_a_bad_part_and_changes_nothing(db):
    count = db.execute("SELECT count(*) FROM ootd.served_feeds").fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="part must be in 0 .. parts - 1"):
        db.execute("CALL ootd.refresh_feeds(now(), NULL, 2, 2)")
    assert db.execute("SELECT count(*) FROM ootd.served_feeds").fetchone()[0] == count


def test_the_api_role_reads_feeds_but_cannot_touch_served_rows(db):
    at = local_instant(db, 109, "12:00")
    assert served(db, 109, at)
    db.execute("SET ROLE ootd_api")
    try:
        assert len(feed(db, 109, at)) == 3
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT * FROM ootd.served_feeds")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("CALL ootd.refresh_feeds()")
    finally:
        db.execute("RESET ROLE")


def test_ootd_feeds_status_and_refresh_say_what_is_current(db, served_url):
    env = {"DATABASE_URL": served_url}
    db.execute("UPDATE ootd.scoring_weights SET jitter = 2e-9")  # every row stale
    status = run_cli("feeds", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert re.search(r"400 users, 0 rows current, [1-9][\d,]* stale", status.stdout), status.stdout
    refreshed = run_cli("feeds", "refresh", "--jobs", "3", env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert re.search(r"400 users, [1-9][\d,]* rows current, 0 stale", refreshed.stdout), refreshed.stdout
    bad = run_cli("feeds", "refresh", "--jobs", "0", env=env)
    assert bad.returncode == 2 and "--jobs" in bad.stderr


def test_a_writing_transaction_ranks_its_own_feeds_live_and_raises_the_version_once_at_commit(db):
    user_id = 110
    at = local_instant(db, user_id, "13:00")
    version = db.execute("SELECT version FROM ootd.serving_inputs").fetchone()[0]
    with db.transaction():
        db.execute("UPDATE ootd.scoring_weights SET cosine = 0.9")
        db.execute("UPDATE ootd.scoring_weights SET liked_decay = 0.4")
        assert db.execute("SELECT version FROM ootd.serving_inputs").fetchone()[0] == version  # not before commit
        assert_same(db, user_id, at, from_rows=False)  # its own feeds: the new weights, live
    assert db.execute("SELECT version FROM ootd.serving_inputs").fetchone()[0] == version + 1  # once
    assert_same(db, user_id, at, from_rows=False)  # stale for everyone until the refresh


def test_a_long_transaction_writing_an_input_makes_no_other_writer_wait(db, served_url):
    """The version is raised at commit: an open transaction that wrote a pool (as ootd.generate_pool does
    while it waits for the LLM) holds no lock that a weights update or a weather write waits for."""
    with psycopg.connect(served_url) as long_one:
        long_one.execute(
            "UPDATE ootd.pools SET members = members WHERE cluster_id = (SELECT min(cluster_id) FROM ootd.pools)"
        )
        db.execute("SET lock_timeout = '2s'")
        try:
            db.execute("UPDATE ootd.scoring_weights SET cosine = 0.8")  # commits at once (autocommit)
            db.execute(
                "UPDATE ootd.weather_daily SET temp_c = temp_c WHERE day = (SELECT min(day) FROM ootd.weather_daily)"
            )
        finally:
            db.execute("RESET lock_timeout")
        long_one.commit()
