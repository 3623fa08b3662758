"""Benchmark: the nightly batch on 1,000,000 users with the offline provider.

Goals (issue 3): wall time <= 60 s excluding LLM latency, batch process peak
RSS < 200 MB, LLM calls == K, and K bounded (<= 40) while N grows.  Since
issue 28 the nightly also writes every user's served feed (its own line: the
issue's bound for it is 120 s at 1,000,000 users).

Usage: python -m bench.nightly [--users N] [--date YYYY-MM-DD]
Seeds 10k, then 100k, then N users into one fresh database, reporting K for
the same date at each size, then runs `ootd nightly` for that date in a
separate process (so its RSS is the batch's alone) and reads the ledger.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import date

from batch.nightly import record_weather
from batch.seed import seed_users
from bench.common import bench_database, machine
from cli.main import migrate
from db import REPO_ROOT
from db.connect import connect

K_QUERY = "SELECT count(*) AS k, sum(members) AS n FROM ootd.cluster_demand(%s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 4, 20))
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000) if n < args.users] + [args.users]
    print(f"machine: {machine()}")
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:  # record the day's weather once, as the batch would
            record_weather(conn, args.date, None)
        for n in sizes:
            with connect(url) as conn:
                seed_users(conn, n, 42)
            with connect(url) as conn:
                started = time.perf_counter()
                row = conn.execute(K_QUERY, (args.date,)).fetchone()
                print(
                    f"N = {row['n']:>9,}: K = {row['k']} clusters "
                    f"(cluster_demand took {time.perf_counter() - started:.2f} s)"
                )

        env = {**os.environ, "DATABASE_URL": url}
        env.pop("OPENAI_API_KEY", None)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "cli.main", "nightly", "--date", args.date.isoformat(), "--llm", "offline"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if proc.returncode != 0:
            sys.exit(f"nightly failed ({proc.returncode}): {proc.stderr[-2000:]}")
        with connect(url) as conn:
            ledger = conn.execute(
                "SELECT count(*) FILTER (WHERE kind = 'chat') AS chat, count(DISTINCT cluster_id) AS clusters, "
                "sum(latency_ms) AS llm_ms FROM ootd.llm_calls WHERE pool_date = %s",
                (args.date,),
            ).fetchone()
            k = conn.execute(K_QUERY, (args.date,)).fetchone()["k"]
            cached = conn.execute(
                "SELECT count(*) AS c FROM ootd.pool_cache WHERE pool_date = %s", (args.date,)
            ).fetchone()["c"]
        llm_s = (ledger["llm_ms"] or 0) / 1000.0
        print(
            f"nightly ({args.users:,} users, offline): wall {wall:.1f} s including process start; "
            f"LLM (stylist) time {llm_s:.2f} s; excluding it {wall - llm_s:.1f} s "
            f"(goal <= 60 s: {'PASS' if wall - llm_s <= 60 else 'FAIL'})"
        )
        print(f"batch process peak RSS: {rss_mb:.0f} MB (goal < 200 MB: {'PASS' if rss_mb < 200 else 'FAIL'})")
        served = [line.strip() for line in proc.stdout.splitlines() if "rows current" in line]
        print(f"served feeds written (part of the wall above, issue 28): {served[0] if served else 'none'}")
        print(
            f"LLM chat calls: {ledger['chat']} for K = {k} clusters "
            f"({'PASS' if ledger['chat'] == k else 'FAIL'}); cached outfits: {cached}"
        )


if __name__ == "__main__":
    main()
