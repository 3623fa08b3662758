"""The rebuilt feed (migration 0008) ranks exactly as the memoized one did, on a populated database.

The served-yesterday decay is the one ranking change 0008 makes on purpose; a fresh database has
served nothing yesterday, so every answer at 0009 must be identical to 0007's.  (0010 then changes
the headline, the cascade and diversity on purpose, for issue 17.)  The upgrades run on a
database holding users, likes and pools, which all survive them."""

from __future__ import annotations

from datetime import date

import psycopg

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from cli.main import migrate
from db.connect import connect

DAY = date(2026, 4, 20)
INSTANTS = [f"{DAY} 09:00+00", f"{DAY} 15:00+00", f"{DAY} 21:30+00"]


def feeds(url: str, users: list[int]) -> dict[tuple[int, str], list[tuple]]:
    """Each user's feed at each instant, latest instant first: the memoized feed then never has a
    "served yesterday" to apply (its decay is the ranking change 0008 makes on purpose)."""
    with psycopg.connect(url) as conn:
        return {
            (u, at): conn.execute("SELECT * FROM ootd.feed(%s, %s, 5)", (u, at)).fetchall()
            for u in users
            for at in reversed(INSTANTS)
        }


def counts(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM ootd.users), (SELECT count(*) FROM ootd.likes), "
            "(SELECT count(*) FROM ootd.pools), (SELECT count(*) FROM ootd.outfits), "
            "(SELECT sum(likes_count) FROM ootd.users)"
        ).fetchone()


def test_the_rebuilt_feed_ranks_as_the_memoized_one_and_the_upgrade_keeps_every_row(empty_db_url):
    url = empty_db_url
    migrate(url)
    with connect(url) as conn:
        seed_users(conn, 3_000, 7)
    run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
    with psycopg.connect(url, autocommit=True) as conn:  # some likes, so likes and profiles must survive
        conn.execute(
            "INSERT INTO ootd.likes (user_id, outfit_id) "
            "SELECT u, (SELECT min(id) FROM ootd.outfits) + u % 20 FROM generate_series(1, 300, 7) u"
        )
    users = list(range(1, 3_001, 10))  # 300 users (vetoes, cascades, time zones among them)
    with psycopg.connect(url, autocommit=True) as conn:  # and one whose vetoes leave 1..4 outfits of 20
        cluster = conn.execute("SELECT cluster_id FROM ootd.feed(2, %s)", (INSTANTS[0],)).fetchone()[0]
        kept = conn.execute(
            "SELECT category FROM ootd.outfits WHERE cluster_id = %s GROUP BY category "
            "HAVING count(*) BETWEEN 1 AND 4 ORDER BY category LIMIT 1",
            (cluster,),
        ).fetchone()[0]
        conn.execute(
            "UPDATE ootd.users SET style_rules = jsonb_build_object('disliked_categories', "
            "(SELECT jsonb_agg(name) FROM ootd.categories WHERE name <> %s)) WHERE id = 2",
            (kept,),
        )
    users.append(2)

    # the memoized feed: every answer is a first request (allow_data_loss: the likes were learned, and
    # 0017's stated profiles go with the downgrade; the rows counted below all stay)
    migrate(url, "0007", allow_data_loss=True)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('ootd.feed_memo') IS NOT NULL").fetchone()[0]
    before_rows = counts(url)
    old = feeds(url, users)

    migrate(url, "0009")  # the rebuilt, pure-read feed, on the populated database
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('ootd.feed_memo')").fetchone()[0] is None
    assert counts(url) == before_rows
    new = feeds(url, users)
    assert any(f[0][9] for f in new.values())  # the veto cascade is among the compared answers
    assert any(len(f) < 5 for f in new.values())  # so is a feed the vetoes leave short
    assert new == old

    migrate(url)  # and on to head: every row still there, every feed now full (issue 17's cascade)
    assert counts(url) == before_rows
    assert all(len(f) == 5 for f in feeds(url, users).values())
