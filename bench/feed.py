"""Benchmark: ootd.feed against SELECT 1, measured side by side on the 10,000-user seed.

Goals (issue 4): (1) one psycopg connection, feed calls/s / SELECT 1 calls/s >= 0.6;
(2) pgbench -M prepared -c 2, feed TPS / SELECT 1 TPS >= 0.25;
(3) EXPLAIN ANALYZE execution time of one feed <= 0.3 ms.
Usage: python -m bench.feed [--seconds S]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.common import bench_database, machine
from cli.main import migrate
from db.connect import connect
from db.server import bin_dir

DAY = date(2026, 4, 20)
AT = f"{DAY} 12:00+00"
USERS = 10_000
FEED_SQL = "SELECT * FROM ootd.feed(%s, %s)"
BARE_MEMO_READ = """
SELECT m.rank, m.outfit_id, m.title, m.category, m.color, m.daypart, m.score, m.headline,
       m.cluster_id, m.relaxed_rules
FROM ootd.feed_memo m
WHERE m.user_id = %(user)s AND m.row_limit = 3 AND m.valid_from <= %(at)s AND %(at)s < m.valid_to
  AND m.epoch = (SELECT s.epoch FROM ootd.serving_state s)
ORDER BY m.valid_from, m.rank"""


def side_by_side(conn: psycopg.Connection, seconds: float, binary: bool = False,
                 feed_sql: str | None = None) -> tuple[float, float]:
    """SELECT 1 and ootd.feed calls/s on one connection, alternating in 0.25 s slices so both see
    the same machine (other load on a shared 2-core box shifts both, not their ratio)."""
    counts, spent = [0, 0], [0.0, 0.0]
    user = (lambda i: {"user": i * 7919 % USERS + 1, "at": AT}) if feed_sql else (lambda i: (i * 7919 % USERS + 1, AT))
    statements = [("SELECT 1", lambda i: None), (feed_sql or FEED_SQL, user)]
    deadline = time.perf_counter() + 2 * seconds
    while time.perf_counter() < deadline:
        for k, (sql, params) in enumerate(statements):
            started = time.perf_counter()
            stop = started + 0.25
            while time.perf_counter() < stop:
                for _ in range(50):
                    conn.execute(sql, params(counts[k]), prepare=True, binary=binary).fetchall()
                    counts[k] += 1
            spent[k] += time.perf_counter() - started
    return counts[0] / spent[0], counts[1] / spent[1]


def first_requests_per_second(conn: psycopg.Connection, seconds: float) -> float:
    """ootd.feed for users never served today (each call ranks and memoizes)."""
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and n < USERS:
        conn.execute(FEED_SQL, (n + 1, AT), prepare=True).fetchall()
        n += 1
    return n / (time.perf_counter() - started)


def explain_ms(conn: psycopg.Connection, i: int) -> float:
    plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) SELECT * FROM ootd.feed(%s, %s)",
                        (i * 7919 % USERS + 1, AT)).fetchall()
    return float(next(r[0] for r in plan if r[0].startswith("Execution Time")).split()[2])


def pgbench(url: str, script: str, seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    out = subprocess.run([str(bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", "2", "-j", "2",
                          "-T", str(seconds), "-f", handle.name, url], capture_output=True, text=True, check=True)
    Path(handle.name).unlink()
    return float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("TRUNCATE ootd.feed_memo")
            cold_calls = first_requests_per_second(conn, min(args.seconds, 4.0))
            conn.execute("SELECT count(*) FROM ootd.users u, ootd.feed(u.id, %s)", (AT,))  # every user served once
            conn.execute("VACUUM ANALYZE ootd.feed_memo")
            one, feed = side_by_side(conn, args.seconds)
            one_bin, feed_bin = side_by_side(conn, args.seconds, binary=True)
            # ceiling: the fast path's query sent bare, by the owner (no function call, no privilege
            # boundary); ootd_api may not do this, it has no table access
            one_bare, feed_bare = side_by_side(conn, args.seconds, feed_sql=BARE_MEMO_READ)
            warm = [explain_ms(conn, i) for i in range(200)]          # repeat requests
            conn.execute("TRUNCATE ootd.feed_memo")
            timings = [explain_ms(conn, i) for i in range(200)]       # first request of the day
            conn.execute("SELECT count(*) FROM ootd.users u, ootd.feed(u.id, %s)", (AT,))
        seconds = max(3, int(args.seconds) // 3)
        script = f"\\set uid random(1, {USERS})\nSELECT * FROM ootd.feed(:uid, '{AT}');\n"
        runs_one, runs_feed = [], []
        for _ in range(3):  # alternate, then take medians
            runs_one.append(pgbench(url, "SELECT 1;\n", seconds))
            runs_feed.append(pgbench(url, script, seconds))
        tps_one, tps_feed = statistics.median(runs_one), statistics.median(runs_feed)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE ootd.feed_memo")
        tps_cold = pgbench(url, script, 2)   # starts cold; 10,000 users are memoized within the run
    print(f"machine: {machine()}")
    print(f"(1) one psycopg connection, text results: SELECT 1 {one:,.0f}/s, ootd.feed {feed:,.0f}/s repeat "
          f"requests, ratio {feed / one:.2f} (goal >= 0.6); binary results: SELECT 1 {one_bin:,.0f}/s, "
          f"ootd.feed {feed_bin:,.0f}/s, ratio {feed_bin / one_bin:.2f}; first request of the day "
          f"{cold_calls:,.0f}/s, ratio {cold_calls / one:.2f}")
    print(f"    ceiling, the same memo read sent as a bare query by the owner: SELECT 1 {one_bare:,.0f}/s, "
          f"query {feed_bare:,.0f}/s, ratio {feed_bare / one_bare:.2f}")
    print(f"    pgbench runs, SELECT 1: {', '.join(f'{x:,.0f}' for x in runs_one)}; "
          f"ootd.feed: {', '.join(f'{x:,.0f}' for x in runs_feed)}")
    print(f"(2) pgbench -M prepared -c 2, random users, every user served once already: SELECT 1 {tps_one:,.0f} "
          f"tps, ootd.feed {tps_feed:,.0f} tps, ratio {tps_feed / tps_one:.2f} (goal >= 0.25); from an empty "
          f"memo (2 s): {tps_cold:,.0f} tps, ratio {tps_cold / tps_one:.2f}")
    print(f"(3) EXPLAIN ANALYZE execution time of one feed: repeat request median {statistics.median(warm):.3f} ms, "
          f"p95 {sorted(warm)[int(0.95 * len(warm))]:.3f} ms (goal <= 0.3 ms); first request of the day median "
          f"{statistics.median(timings):.3f} ms, p95 {sorted(timings)[int(0.95 * len(timings))]:.3f} ms")


if __name__ == "__main__":
    main()
