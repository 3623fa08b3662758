"""Benchmark: likes that learn (ootd.like) vs bare inserts into ootd.likes, on the 10,000-user seed.

Goals (issue 5): the throughput of ootd.like (records the like and learns the profile in the
same transaction; revision 0014 replaced the likes trigger by this explicit call) / that of a
bare INSERT into ootd.likes (what a like costs without learning) >= 0.5; per-like latency p99
<= 1 ms at 2 clients.  Rounds alternate learning / bare so both see the same
machine; each round starts from an empty likes table and fresh profiles.
The server runs with durable defaults (fsync and synchronous_commit on), so a
like's latency includes its WAL flush; a second pair of rounds runs with
synchronous_commit off for the session, which shows the like's own CPU path.
Per mode it also prints the WAL each like writes (LSN difference) and, on PostgreSQL 18+
as a superuser, the client backends' WAL flushes from pg_stat_io: flushes per like and
their mean time (track_wal_io_timing on for the pgbench sessions).
Usage: python -m bench.likes [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
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
USERS = 10_000
# Each round starts from a CHECKPOINT and fresh profiles: its first seconds write a full-page
# image of every users page touched first and seed every user's color_affinity.  The p99 after
# this warm-up is the steady state (production checkpoints every few minutes, and a user's
# first like happens once); the p99 of the whole round is the goal's figure.
WARM_UP_S = 3


# The client backends' WAL flushes and their total time in ms since the last
# pg_stat_reset_shared('io') (PostgreSQL 18 counts WAL in pg_stat_io; times need track_wal_io_timing).
WAL_IO = """SELECT sum(fsyncs)::bigint, sum(fsync_time)::float8 FROM pg_stat_io
            WHERE object = 'wal' AND backend_type = 'client backend'"""


@dataclass
class Run:
    tps: float
    latencies: list[float]  # every transaction's, in ms
    steady: list[float]  # those completed after the first WARM_UP_S seconds
    wal_bytes: int  # WAL written during the run (all backends)
    flushes: int | None  # WAL fsyncs by the client backends (None: not measured)
    flush_ms: float | None  # their total time


def wal_io_available(url: str) -> bool:
    """pg_stat_io counts WAL (PostgreSQL 18+) and we may reset it and time flushes (superuser)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT current_setting('server_version_num')::int >= 180000 AND current_setting('is_superuser')::bool"
            ).fetchone()[0]
        )


def pgbench(url: str, script: str, seconds: int, clients: int = 2, durable: bool = True, wal_io: bool = False) -> Run:
    """One pgbench run; durable=False: synchronous_commit off; wal_io: count the WAL flushes."""
    options = [] if durable else ["-c synchronous_commit=off"]
    if wal_io:
        options.append("-c track_wal_io_timing=on")
    env = dict(os.environ, PGOPTIONS=" ".join(options))
    with psycopg.connect(url, autocommit=True) as conn:
        if wal_io:
            conn.execute("SELECT pg_stat_reset_shared('io')")
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "script.sql")
        path.write_text(script)
        out = subprocess.run(
            [
                str(bin_dir() / "pgbench"),
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                "-l",
                "--log-prefix",
                f"{tmp}/log",
                "-f",
                str(path),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
            env=env,
        )
        rows = [
            (int(f[4]) + int(f[5]) / 1e6, int(f[2]) / 1000.0)  # (completed at, latency in ms)
            for log in Path(tmp).glob("log*")
            for f in (line.split() for line in log.read_text().splitlines())
        ]
    flushes = flush_ms = None
    with psycopg.connect(url, autocommit=True) as conn:
        wal_bytes = int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,)).fetchone()[0])
        if wal_io:  # pgbench's backends report their I/O statistics as they exit
            deadline = time.monotonic() + 10
            while (
                conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'").fetchone()[0]
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            flushes, flush_ms = conn.execute(WAL_IO).fetchone()
    start = min(t for t, _ in rows)
    return Run(
        float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1)),
        [ms for _, ms in rows],
        [ms for t, ms in rows if t >= start + WARM_UP_S],
        wal_bytes,
        flushes,
        flush_ms,
    )


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (NaN for none: a run no longer than the warm-up)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE ootd.likes")
        conn.execute(
            "UPDATE ootd.users SET likes_count = 0, style_dna = style_dna - 'color_affinity' "
            "WHERE likes_count > 0 OR style_dna ? 'color_affinity'"
        )
        conn.execute("VACUUM ANALYZE ootd.users, ootd.likes")
        conn.execute("CHECKPOINT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
        with psycopg.connect(url, autocommit=True) as conn:
            low, high = conn.execute("SELECT min(id), max(id) FROM ootd.outfits").fetchone()
        insert = (
            f"\\set u random(1, {USERS})\n\\set o random({low}, {high})\n"
            "INSERT INTO ootd.likes (user_id, outfit_id) VALUES (:u, :o) ON CONFLICT DO NOTHING;\n"
        )
        like = f"\\set u random(1, {USERS})\n\\set o random({low}, {high})\nSELECT ootd.like(:u, :o);\n"
        wal_io = wal_io_available(url)
        scripts = {"learning": like, "bare": insert}
        results: dict[str, list[Run]] = {
            "learning": [],
            "bare": [],
            "learning, no flush": [],
            "bare, no flush": [],
        }
        for _ in range(args.rounds):
            for mode in ("learning", "bare"):
                reset(url)
                results[mode].append(pgbench(url, scripts[mode], args.seconds, wal_io=wal_io))
            for mode in ("learning", "bare"):  # the same without waiting for the WAL flush
                reset(url)
                results[f"{mode}, no flush"].append(pgbench(url, scripts[mode], args.seconds, durable=False))
    print(
        f"machine: {machine()}; pgbench -M prepared -c 2 -j 2, {args.rounds} x {args.seconds} s per mode, "
        f"fsync and synchronous_commit on"
    )
    tps = {mode: statistics.median(r.tps for r in runs) for mode, runs in results.items()}
    latencies = {mode: [x for r in runs for x in r.latencies] for mode, runs in results.items()}
    p99 = {mode: pct(lat, 0.99) for mode, lat in latencies.items()}
    steady = {mode: pct([x for r in runs for x in r.steady], 0.99) for mode, runs in results.items()}
    for mode, runs in results.items():
        lat = latencies[mode]
        label = mode.replace("learning", "ootd.like()").replace("bare", "bare INSERT")
        wal = f"WAL {sum(r.wal_bytes for r in runs) / len(lat):,.0f} B/like"
        counted = [r for r in runs if r.flushes]  # runs with pg_stat_io figures
        if counted:
            n = sum(r.flushes for r in counted)
            wal += (
                f", {n / sum(len(r.latencies) for r in counted):.2f} flushes/like "
                f"of {sum(r.flush_ms for r in counted) / n * 1000:.0f} us"
            )
        print(
            f"  {label:<36} {tps[mode]:>8,.0f} tps   latency p50 {pct(lat, 0.5):.3f} ms  "
            f"p99 {p99[mode]:.3f} ms (after {WARM_UP_S} s: {steady[mode]:.3f} ms)  ({len(lat):,} likes; {wal})"
        )
    print(
        f"throughput ratio ootd.like()/bare INSERT: {tps['learning'] / tps['bare']:.2f} (goal >= 0.5); "
        f"per-like p99 of ootd.like(): {p99['learning']:.3f} ms (goal <= 1 ms; after the {WARM_UP_S} s "
        f"warm-up: {steady['learning']:.3f} ms); without the WAL flush wait (synchronous_commit off): ratio "
        f"{tps['learning, no flush'] / tps['bare, no flush']:.2f}, p99 {p99['learning, no flush']:.3f} ms"
    )


if __name__ == "__main__":
    main()
