"""Benchmark: the online evaluation's long configuration (issue 27), its goals and its wall time.

`ootd evaluate --online --days 30 --users 2000` on a fresh embedded server (or DATABASE_URL, whose
user needs CREATEDB): 2,000 simulated users with a hidden truth live 30 days against every arm
(upper_bound, pool_ceiling, served, own_pool, floor; one arm per variant of a running experiment),
two arms simulated at once (--jobs).  The judge is the hidden truth (ootd_truth), which the ranking
cannot read: no figure here is the feed's own score.  Reported against the issue's goals:

- the illusion ratio of `served` (its likes per impression / the 1:1 upper bound's) >= 0.9, next to
  the pool ceiling's (each user's best 3 of their own pool by the truth: what any ranking of the
  cluster's pool can reach at most), and served >= own_pool;
- the learning lift: served's likes per impression on days 21-30 above days 1-10 (and each arm's);
- the wall time < 600 s on 2 cores, and the time per simulated user-day.

Usage: python -m bench.online [--users U] [--days N] [--seed S] [--jobs J] [--plot PATH]
"""

from __future__ import annotations

import argparse
import time

from bench.common import bench_database, machine
from cli.evaluate import evaluate_online, plot_online
from cli.main import migrate


def window(days: list[dict], first: int, last: int) -> float:
    """Likes per impression over days first..last (1-based, inclusive)."""
    chosen = days[first - 1 : last]
    impressions = sum(d["impressions"] for d in chosen)
    return sum(d["likes"] for d in chosen) / impressions if impressions else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--plot", default="evaluation-online-long.png")
    args = parser.parse_args()
    tenth = max(1, args.days // 3)
    with bench_database() as url:
        migrate(url)
        started = time.perf_counter()
        row = evaluate_online(url, args.days, args.users, args.seed, jobs=args.jobs)
        seconds = time.perf_counter() - started
        plot_online(row, args.plot)
    arms = row["metrics"]["arms"]
    print(
        f"ootd evaluate --online: {args.users:,} users x {args.days} days, seed {args.seed}, {args.jobs} arms at "
        f"once, {machine()}: {seconds:.0f} s ({seconds / (args.users * args.days) * 1000:.1f} ms per user-day, "
        f"{len(arms)} arms); plot {args.plot}"
    )
    print(
        f"{'arm':<16}{'likes/impr':>11}{'illusion':>10}{'days 1-' + str(tenth):>12}"
        f"{'days ' + str(args.days - tenth + 1) + '-' + str(args.days):>12}{'lift':>9}{'repeats':>9}"
    )
    for name in row["params"]["arms"]:
        m = arms[name]
        early, late = window(m["days"], 1, tenth), window(m["days"], args.days - tenth + 1, args.days)
        print(
            f"{name:<16}{float(m['likes_per_impression']):>11.4f}{float(m['illusion_ratio']):>10.3f}"
            f"{early:>12.4f}{late:>12.4f}{late - early:>+9.4f}{int(m['repeats']):>9}"
        )
    served = next(n for n in row["params"]["arms"] if n.startswith("served"))
    ratio = float(arms[served]["illusion_ratio"])
    ceiling = float(arms["pool_ceiling"]["illusion_ratio"]) if "pool_ceiling" in arms else float("nan")
    lift = window(arms[served]["days"], args.days - tenth + 1, args.days) - window(arms[served]["days"], 1, tenth)
    print("goals (judged by the hidden truth):")
    print(f"  illusion ratio of {served} >= 0.9: {ratio:.3f} (the pool ceiling, any ranking's limit: {ceiling:.3f})")
    if "own_pool" in arms:
        own = float(arms["own_pool"]["likes_per_impression"])
        print(f"  {served} >= own_pool: {float(arms[served]['likes_per_impression']):.4f} vs {own:.4f}")
    print(f"  learning lift (days {args.days - tenth + 1}-{args.days} minus 1-{tenth}) > 0: {lift:+.4f}")
    print(f"  wall time < 600 s: {seconds:.0f} s")
    print(f"stored as ootd.evaluations id {row['id']} (a throwaway server unless DATABASE_URL)")


if __name__ == "__main__":
    main()
