"""Benchmark (issue 20): what an A/B experiment costs the feed, and what reading its results costs.

One run, one fresh embedded server (or DATABASE_URL), --users seeded users and one day of pools
(offline nightly).  Measured side by side in the same run:
  (a) the feed: SELECT * FROM ootd.feed(user, at, 3) for --feeds users, one connection (prepared
      statements), with no experiment and with a running experiment of two and of four variants
      (each user's variant is found by ootd._assignment on every call; the variants change weights
      that cost nothing to apply, so the difference is the assignment's).  The three take turns
      slice by slice, in an order that alternates, over --rounds rounds; reported: calls/s per mode
      (median of rounds) and the ratios to "no experiment", and ootd._assignment alone per call
      (in the server: one statement over the slice's users);
  (b) SELECT * FROM ootd.experiment_results with --likes likes made during the experiment (inserted
      directly, spread over its users and days): median of 3 reads, and per user.
Usage: python -m bench.experiments [--users 100000] [--likes 200000] [--feeds 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import psycopg
from psycopg.types.json import Jsonb

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.common import bench_database, machine
from cli.main import migrate
from db.connect import connect

DAY = date(2026, 4, 20)
AT = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
FEED_SQL = "SELECT * FROM ootd.feed(%s, %s, 3)"
ASSIGNMENT_SQL = "SELECT count(a.variant) FROM unnest(%s::bigint[]) u CROSS JOIN LATERAL ootd._assignment(u) a"
RESULTS_SQL = "SELECT * FROM ootd.experiment_results WHERE experiment = 'bench_results'"
EXPERIMENTS: dict[str, dict | None] = {
    "no experiment": None,
    "2 variants": {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": {"cosine": 1.5}}},
    "4 variants": {
        "control": {"share": 0.4},
        "bold": {"share": 0.2, "weights": {"cosine": 1.5}},
        "calm": {"share": 0.2, "weights": {"daypart_priority": 0.5}},
        "steady": {"share": 0.2, "weights": {"liked_decay": 0.3}},
    },
}


def switch(conn: psycopg.Connection, mode: str, n: int) -> None:
    """End whatever runs; start `mode`'s experiment (a new name each time: names are never reused)."""
    running = conn.execute("SELECT name FROM ootd.experiments WHERE ended_at IS NULL").fetchone()
    if running:
        conn.execute("SELECT ootd.end_experiment(%s)", running)
    if EXPERIMENTS[mode] is not None:
        conn.execute("SELECT * FROM ootd.start_experiment(%s, %s)", (f"bench_{n}", Jsonb(EXPERIMENTS[mode])))


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--likes", type=int, default=200_000)
    ap.add_argument("--feeds", type=int, default=2_000, help="feeds per mode and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slices", type=int, default=10)
    args = ap.parse_args()

    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, args.users, 42)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
        print(f"machine: {machine()}; {args.users:,} users, pools of {DAY}")
        with psycopg.connect(url, autocommit=True) as admin, psycopg.connect(url, autocommit=True) as conn:
            step = max(1, args.users // args.feeds)
            users = list(range(1, args.users + 1, step))[: args.feeds]
            cur = conn.cursor()
            for user_id in users[:200]:  # warm the plan caches and the buffers
                cur.execute(FEED_SQL, (user_id, AT), prepare=True).fetchall()
            rates: dict[str, list[float]] = {m: [] for m in EXPERIMENTS}
            assignment: dict[str, list[float]] = {m: [] for m in EXPERIMENTS}
            chunk = max(1, len(users) // args.slices)
            n = 0
            for _ in range(args.rounds):
                spent = dict.fromkeys(EXPERIMENTS, 0.0)
                spent_assignment = dict.fromkeys(EXPERIMENTS, 0.0)
                for s in range(args.slices):
                    part = users[s * chunk : (s + 1) * chunk]
                    order = list(EXPERIMENTS) if s % 2 == 0 else list(reversed(EXPERIMENTS))
                    for mode in order:
                        n += 1
                        switch(admin, mode, n)
                        spent[mode] += timed(
                            lambda: [cur.execute(FEED_SQL, (u, AT), prepare=True).fetchall() for u in part]
                        )
                        spent_assignment[mode] += timed(lambda: cur.execute(ASSIGNMENT_SQL, (part,)).fetchall())
                for mode in EXPERIMENTS:
                    rates[mode].append(chunk * args.slices / spent[mode])
                    assignment[mode].append(spent_assignment[mode] / (chunk * args.slices) * 1e6)
            switch(admin, "no experiment", 0)
            base = statistics.median(rates["no experiment"])
            print(f"\n(a) ootd.feed, 1 connection, {chunk * args.slices:,} users x {args.rounds} rounds per mode")
            print(f"{'mode':<16}{'feeds/s median':>16}{'spread':>20}{'vs none':>10}{'_assignment µs':>16}")
            for mode, r in rates.items():
                print(
                    f"{mode:<16}{statistics.median(r):>16,.0f}{f'{min(r):,.0f}..{max(r):,.0f}':>20}"
                    f"{statistics.median(r) / base:>10.3f}{statistics.median(assignment[mode]):>16.1f}"
                )

            # (b) the results view
            admin.execute(
                "SELECT * FROM ootd.start_experiment('bench_results', %s)", (Jsonb(EXPERIMENTS["4 variants"]),)
            )
            admin.execute(
                "UPDATE ootd.experiments SET started_at = %s, allocated_at = %s WHERE name = 'bench_results'",
                (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
            )
            admin.execute(
                "WITH a AS (SELECT array_agg(id ORDER BY id) AS ids FROM ootd.outfits) "
                "INSERT INTO ootd.likes (user_id, outfit_id, liked_at) "
                "SELECT 1 + (hashint4(i) & 2147483647) %% %s, a.ids[1 + (hashint4(-i) & 2147483647) %% cardinality(a.ids)], "
                "       timestamptz '2026-04-01' + (i %% 20) * interval '1 day' "
                "FROM generate_series(1, %s) i, a ON CONFLICT DO NOTHING",
                (args.users, args.likes),
            )
            likes = admin.execute("SELECT count(*) FROM ootd.likes").fetchone()[0]
            admin.execute("ANALYZE ootd.likes")
            times = [timed(lambda: admin.execute(RESULTS_SQL).fetchall()) for _ in range(3)]
            print(f"\n(b) ootd.experiment_results, 4 variants, {args.users:,} users, {likes:,} likes")
            print(
                f"median of 3: {statistics.median(times) * 1000:,.0f} ms ({min(times) * 1000:,.0f}..{max(times) * 1000:,.0f});"
                f" {statistics.median(times) / args.users * 1e6:.2f} µs per user"
            )
            for row in admin.execute(
                "SELECT variant, users, likes, round(likes_per_user_day::numeric, 4), "
                "round(diff_likes_per_user_day::numeric, 5), round(diff_ci95_low::numeric, 5), "
                "round(diff_ci95_high::numeric, 5) FROM ootd.experiment_results WHERE experiment = 'bench_results'"
            ):
                print("   ", row)


if __name__ == "__main__":
    main()
