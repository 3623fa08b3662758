"""Benchmark: `ootd seed` of 1,000,000 users (goal: at most 60 s on 2 cores).

Usage: python -m bench.seed [--users N] [--seed S]
Runs on a fresh embedded server (fsync on, as users run it) unless
DATABASE_URL is set.  Reports wall time, users/s and the client's peak RSS.
"""

from __future__ import annotations

import argparse
import time

from batch.seed import seed_users
from bench.common import bench_database, machine, peak_rss_mb
from cli.main import migrate
from db.connect import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with bench_database() as url:
        migrate(url)
        started = time.perf_counter()
        with connect(url) as conn:
            result = seed_users(conn, args.users, args.seed)
        seconds = time.perf_counter() - started
        with connect(url) as conn:
            count = conn.execute("SELECT count(*) AS n FROM ootd.users").fetchone()["n"]
    print(f"machine: {machine()}")
    print(
        f"seed: {result.created:,} users created (table holds {count:,}) in {seconds:.1f} s "
        f"= {result.created / seconds:,.0f} users/s; goal <= 60 s for 1,000,000: "
        f"{'PASS' if seconds <= 60 or args.users != 1_000_000 else 'FAIL'}"
    )
    print(f"client peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
