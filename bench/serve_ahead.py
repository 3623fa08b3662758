"""Benchmark: what serving ahead costs its writers, revision 0020 (one ranking per user, date and
priority daypart) against 0021 (the ranking set-based: one `ootd._rank_all` call per batch of users),
side by side in one run on one database.

One fresh embedded server (durable defaults), 10,000 seeded users, the offline pools of DAY.  Rounds
alternate the two revisions (`ootd migrate --revision 0020` and back to head: 0021 only replaces
functions), and each round measures:

1. **the nightly's writer**: `ootd.refresh_feeds` in 2 sessions (batch/feeds.py), every user's local
   date now and today's pool date (one local date for most users, as in production): seconds, and
   per user-date;
2. **a like and its unlike**, each rewriting the user's served rows in its transaction: client wall
   per call over one connection, `synchronous_commit` off (the CPU path, not the WAL flush), 300 users
   with rows, p50 and p90; then the same for users without rows (what learning alone costs);
3. **the live ranking** (the feed's fallback, `ootd.feed_explain`, the simulator): `ootd._ranked` of
   1,000 users, timed in the server (one statement), microseconds per call.

Usage: python -m bench.serve_ahead [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from batch.feeds import refresh_feeds
from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.common import bench_database, machine
from cli.main import migrate
from db.connect import connect

AT = datetime.now(UTC)  # as in production: the nightly writes today's pools and each user's local date now
DAY = AT.date()
USERS = 10_000
LIKERS = 300
REVISIONS = ("0020", "head")
USER_DATES = "SELECT count(DISTINCT (user_id, local_date)) AS n FROM ootd.served_feeds"
PICK = "SELECT outfit_id FROM ootd.feed(%s, %s, 3) LIMIT 1"
LIVE = "SELECT count(*) FROM ootd.users u CROSS JOIN LATERAL ootd._ranked(u.id, %s, 3) r WHERE u.id <= 1000"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def like_costs(url: str, users: range) -> tuple[list[float], list[float]]:
    """Client wall of ootd.like and ootd.unlike per call (ms), synchronous_commit off."""
    likes, unlikes = [], []
    with connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for user_id in users:
            outfit = conn.execute(PICK, (user_id, AT)).fetchone()["outfit_id"]
            started = time.perf_counter()
            conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit))
            likes.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            conn.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit))
            unlikes.append((time.perf_counter() - started) * 1000)
    return likes, unlikes


def live_us(url: str) -> float:
    with connect(url, autocommit=True) as conn:
        conn.execute(LIVE, (AT,))  # warm
        started = time.perf_counter()
        conn.execute(LIVE, (AT,))
        return (time.perf_counter() - started) * 1e6 / 1000


def round_of(url: str, revision: str) -> dict:
    migrate(url, revision)
    report = refresh_feeds(url, AT, DAY, jobs=2)
    with connect(url, autocommit=True) as conn:
        user_dates = conn.execute(USER_DATES).fetchone()["n"]
        conn.execute("VACUUM ANALYZE ootd.served_feeds")  # the refresh's dead rows and WAL out of the likes' way
        conn.execute("CHECKPOINT")
    with_rows = like_costs(url, range(1, LIKERS + 1))
    with connect(url, autocommit=True) as conn:  # the next users lose their rows: learning alone
        conn.execute("DELETE FROM ootd.served_feeds WHERE user_id > %s AND user_id <= %s", (LIKERS, 2 * LIKERS))
        conn.execute("VACUUM ootd.served_feeds")
    without = like_costs(url, range(LIKERS + 1, 2 * LIKERS + 1))
    return {
        "revision": revision,
        "refresh_s": report.seconds,
        "per_user_date_ms": report.seconds * 1000 / user_dates,
        "user_dates": user_dates,
        "like": with_rows[0],
        "unlike": with_rows[1],
        "like_bare": without[0],
        "unlike_bare": without[1],
        "live_us": live_us(url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per revision (alternating)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with bench_database() as url:
        migrate(url, "0020")
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline", serve_ahead=False))
        rounds = [round_of(url, revision) for _ in range(args.rounds) for revision in REVISIONS]
    by = {rev: [r for r in rounds if r["revision"] == rev] for rev in REVISIONS}
    med = {
        rev: {k: statistics.median(r[k] for r in rs) for k in ("refresh_s", "per_user_date_ms", "live_us")}
        for rev, rs in by.items()
    }
    for rev, rs in by.items():
        for key in ("like", "unlike", "like_bare", "unlike_bare"):
            values = [v for r in rs for v in r[key]]
            med[rev][key] = (pct(values, 0.5), pct(values, 0.9))
    print(f"{USERS:,} users, {rounds[0]['user_dates']:,} user-dates per refresh, {args.rounds} rounds per revision")
    print("| | 0020 | 0021 (head) | 0021 / 0020 |")
    print("|---|---|---|---|")
    old, new = med["0020"], med["head"]
    print(
        f"| refresh, 2 sessions (s) | {old['refresh_s']:.1f} | {new['refresh_s']:.1f} | "
        f"{new['refresh_s'] / old['refresh_s']:.2f} |"
    )
    print(
        f"| per user-date (ms, 2 sessions) | {old['per_user_date_ms']:.2f} | {new['per_user_date_ms']:.2f} | "
        f"{new['per_user_date_ms'] / old['per_user_date_ms']:.2f} |"
    )
    for key, label in (
        ("like", "like, rows rewritten"),
        ("unlike", "unlike, rows rewritten"),
        ("like_bare", "like, user without rows"),
        ("unlike_bare", "unlike, user without rows"),
    ):
        print(
            f"| {label}: p50 / p90 (ms) | {old[key][0]:.2f} / {old[key][1]:.2f} | "
            f"{new[key][0]:.2f} / {new[key][1]:.2f} | {new[key][0] / old[key][0]:.2f} |"
        )
    print(
        f"| live ranking, in-server (µs per call) | {old['live_us']:.0f} | {new['live_us']:.0f} | "
        f"{new['live_us'] / old['live_us']:.2f} |"
    )
    for r in rounds:
        print(
            f"  round {r['revision']}: refresh {r['refresh_s']:.1f} s, like p50 {pct(r['like'], 0.5):.2f} ms, "
            f"live {r['live_us']:.0f} µs"
        )


if __name__ == "__main__":
    main()
