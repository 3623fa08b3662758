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


def calls_per_second(conn: psycopg.Connection, sql: str, params, seconds: float, binary: bool = False) -> float:
    n, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            conn.execute(sql, params(n), prepare=True, binary=binary).fetchall()
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
            one = calls_per_second(conn, "SELECT 1", lambda i: None, args.seconds)
            one_bin = calls_per_second(conn, "SELECT 1", lambda i: None, args.seconds, binary=True)
            conn.execute("TRUNCATE ootd.feed_memo")
            cold_calls = calls_per_second(conn, FEED_SQL,  # first request of the day, distinct users
                                          lambda i: (i % USERS + 1, AT), min(args.seconds, 4.0))
            conn.execute("SELECT count(*) FROM ootd.users u, ootd.feed(u.id, %s)", (AT,))  # every user served once
            conn.execute("VACUUM ANALYZE ootd.feed_memo")
            feed = calls_per_second(conn, FEED_SQL, lambda i: (i * 7919 % USERS + 1, AT), args.seconds)
            feed_bin = calls_per_second(conn, FEED_SQL, lambda i: (i * 7919 % USERS + 1, AT), args.seconds,
                                        binary=True)
            warm = [explain_ms(conn, i) for i in range(200)]          # repeat requests
            conn.execute("TRUNCATE ootd.feed_memo")
            timings = [explain_ms(conn, i) for i in range(200)]       # first request of the day
            conn.execute("SELECT count(*) FROM ootd.users u, ootd.feed(u.id, %s)", (AT,))
        seconds = max(5, int(args.seconds))
        script = f"\\set uid random(1, {USERS})\nSELECT * FROM ootd.feed(:uid, '{AT}');\n"
        tps_one = pgbench(url, "SELECT 1;\n", seconds)
        tps_feed = pgbench(url, script, seconds)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE ootd.feed_memo")
        tps_cold = pgbench(url, script, 2)   # starts cold; 10,000 users are memoized within the run
    print(f"machine: {machine()}")
    print(f"(1) one psycopg connection, text results: SELECT 1 {one:,.0f}/s, ootd.feed {feed:,.0f}/s repeat "
          f"requests, ratio {feed / one:.2f} (goal >= 0.6); binary results: SELECT 1 {one_bin:,.0f}/s, "
          f"ootd.feed {feed_bin:,.0f}/s, ratio {feed_bin / one_bin:.2f}; first request of the day "
          f"{cold_calls:,.0f}/s, ratio {cold_calls / one:.2f}")
    print(f"(2) pgbench -M prepared -c 2, random users, every user served once already: SELECT 1 {tps_one:,.0f} "
          f"tps, ootd.feed {tps_feed:,.0f} tps, ratio {tps_feed / tps_one:.2f} (goal >= 0.25); from an empty "
          f"memo (2 s): {tps_cold:,.0f} tps, ratio {tps_cold / tps_one:.2f}")
    print(f"(3) EXPLAIN ANALYZE execution time of one feed: repeat request median {statistics.median(warm):.3f} ms, "
          f"p95 {sorted(warm)[int(0.95 * len(warm))]:.3f} ms (goal <= 0.3 ms); first request of the day median "
          f"{statistics.median(timings):.3f} ms, p95 {sorted(timings)[int(0.95 * len(timings))]:.3f} ms")


if __name__ == "__main__":
    main()
