"""Benchmark: what learning costs a like, one at a time and in bulk, on the 10,000-user seed.

Since revision 0017 every write to ootd.likes learns: statement-level AFTER INSERT / DELETE /
UPDATE triggers with transition tables learn each user whose likes changed once per statement
(ootd._likes_changed -> ootd._learn), and an AFTER TRUNCATE trigger restores every stated
profile.  ootd.like() is the check for readable errors plus that INSERT.  One run measures:

1. Bulk: a COPY of 100,000 likes (10 seeded random outfits for each of the 10,000 users, default
   liked_at) into ootd.likes, with the learning triggers enabled vs disabled (ALTER TABLE ...
   DISABLE TRIGGER likes_learn_*; the foreign-key triggers are internal and stay), alternating
   rounds.  Reported: the median seconds per mode and their ratio (trigger / no trigger).
   After every round the bench checks the profiles against the table (learning: sum of
   likes_count = 100,000 and each user's likes_count = their rows; no learning: no profile
   touched) and fails loudly otherwise.
2. A single like (pgbench, 2 clients): ootd.like() vs a bare INSERT into ootd.likes (both learn,
   through the trigger) vs the bare INSERT with the learning triggers disabled (what a like
   costs without learning).  Goal: throughput of ootd.like() / bare INSERT >= 0.6; reported
   too: bare INSERT with learning / without, p50 and p99 per mode.

Every round starts from an empty likes table (TRUNCATE with the triggers enabled, so every
profile is restored, then VACUUM ANALYZE and CHECKPOINT); rounds alternate modes so each
sees the same machine.  The server runs with durable defaults (fsync and synchronous_commit
on), so a like's latency includes its WAL flush; a second set of pgbench rounds runs with
synchronous_commit off for the session, which shows a like's own CPU path.  Per mode it also
prints the WAL each like writes (LSN difference) and, on PostgreSQL 18+ as a superuser, the
client backends' WAL flushes from pg_stat_io: flushes per like and their mean time
(track_wal_io_timing on for the durable pgbench sessions).
Usage: python -m bench.likes [--seconds S] [--rounds R] [--bulk-rounds B]
"""

from __future__ import annotations

import argparse
import os
import random
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
SEED = 42
LIKES_PER_USER = 10  # the bulk COPY: 100,000 likes
# The triggers that learn from writes to ootd.likes (db/sql/05_likes.sql); the TRUNCATE one stays on.
LEARNING_TRIGGERS = ("likes_learn_inserted", "likes_learn_deleted", "likes_learn_updated")
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


def set_learning(url: str, enabled: bool) -> None:
    """Enable or disable the triggers that learn from writes to ootd.likes (not the FK ones)."""
    action = "ENABLE" if enabled else "DISABLE"
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for trigger in LEARNING_TRIGGERS:
            conn.execute(f"ALTER TABLE ootd.likes {action} TRIGGER {trigger}")


def reset(url: str) -> None:
    """An empty likes table and every stated profile back (the TRUNCATE trigger), then a checkpoint."""
    set_learning(url, True)  # a no-learning round may have failed with the triggers off
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE ootd.likes")
        left = conn.execute(
            "SELECT count(*) FROM ootd.users WHERE likes_count <> 0 OR stated_dna IS NOT NULL"
        ).fetchone()[0]
        if left:
            raise SystemExit(f"TRUNCATE ootd.likes left {left} users with learning state")
        conn.execute("VACUUM ANALYZE ootd.users, ootd.likes")
        conn.execute("CHECKPOINT")


def check_learned(url: str, learning: bool, rows: int) -> None:
    """Fail loudly unless the profiles match the likes table (learning) or were left alone (not)."""
    with psycopg.connect(url, autocommit=True) as conn:
        n, total, users, wrong = conn.execute(
            """SELECT (SELECT count(*) FROM ootd.likes),
                      (SELECT coalesce(sum(likes_count), 0) FROM ootd.users),
                      (SELECT count(*) FROM ootd.users WHERE likes_count > 0),
                      (SELECT count(*)
                       FROM (SELECT user_id, count(*) AS n FROM ootd.likes GROUP BY user_id) l
                       FULL JOIN (SELECT id, likes_count FROM ootd.users WHERE likes_count <> 0) u ON u.id = l.user_id
                       WHERE l.n IS DISTINCT FROM u.likes_count)"""
        ).fetchone()
    if n != rows:
        raise SystemExit(f"COPY wrote {n:,} likes, not {rows:,}")
    if learning and (total != rows or wrong):
        raise SystemExit(
            f"learning lost: sum(likes_count) = {total:,} for {rows:,} likes; "
            f"{wrong:,} users whose likes_count differs from their likes"
        )
    if not learning and (total or users):
        raise SystemExit(f"the learning triggers were not disabled: sum(likes_count) = {total:,}")


def bulk_likes(url: str) -> tuple[bytes, int]:
    """COPY text for LIKES_PER_USER distinct seeded random outfits per user, in user order."""
    with psycopg.connect(url, autocommit=True) as conn:
        outfits = [row[0] for row in conn.execute("SELECT id FROM ootd.outfits ORDER BY id")]
        users = [row[0] for row in conn.execute("SELECT id FROM ootd.users ORDER BY id")]
    rng = random.Random(SEED)
    lines = [f"{user}\t{outfit}\n" for user in users for outfit in rng.sample(outfits, LIKES_PER_USER)]
    return "".join(lines).encode(), len(lines)


@dataclass
class Bulk:
    seconds: float
    wal_bytes: int


def bulk_round(url: str, data: bytes, rows: int, learning: bool) -> Bulk:
    """One COPY of the bulk likes into an empty table, with or without the learning triggers."""
    reset(url)
    if not learning:
        set_learning(url, False)
    try:
        with psycopg.connect(url) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            conn.commit()
            start = time.perf_counter()
            with conn.cursor() as cur, cur.copy("COPY ootd.likes (user_id, outfit_id) FROM STDIN") as copy:
                copy.write(data)
            conn.commit()
            seconds = time.perf_counter() - start
            wal = int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,)).fetchone()[0])
    finally:
        if not learning:
            set_learning(url, True)
    check_learned(url, learning, rows)
    return Bulk(seconds, wal)


# pgbench modes: (script, learning triggers enabled, synchronous_commit on)
MODES = {
    "ootd.like()": ("like", True, True),
    "bare INSERT": ("insert", True, True),
    "bare INSERT, no learning": ("insert", False, True),
    "ootd.like(), no flush": ("like", True, False),
    "bare INSERT, no flush": ("insert", True, False),
    "bare INSERT, no learning, no flush": ("insert", False, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per pgbench round")
    parser.add_argument("--rounds", type=int, default=2, help="pgbench rounds per mode")
    parser.add_argument("--bulk-rounds", type=int, default=3, help="COPY rounds per mode")
    args = parser.parse_args()
    began = time.monotonic()
    load_before = os.getloadavg()[0]  # 1-minute: others' work on the shared machine
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, SEED)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline", serve_ahead=True))
        with psycopg.connect(url, autocommit=True) as conn:
            low, high = conn.execute("SELECT min(id), max(id) FROM ootd.outfits").fetchone()
            outfits = conn.execute("SELECT count(*) FROM ootd.outfits").fetchone()[0]
        data, rows = bulk_likes(url)
        bulk: dict[bool, list[Bulk]] = {True: [], False: []}
        for _ in range(args.bulk_rounds):
            for learning in (True, False):
                bulk[learning].append(bulk_round(url, data, rows, learning))
        scripts = {
            "insert": (
                f"\\set u random(1, {USERS})\n\\set o random({low}, {high})\n"
                "INSERT INTO ootd.likes (user_id, outfit_id) VALUES (:u, :o) ON CONFLICT DO NOTHING;\n"
            ),
            "like": f"\\set u random(1, {USERS})\n\\set o random({low}, {high})\nSELECT ootd.like(:u, :o);\n",
        }
        wal_io = wal_io_available(url)
        results: dict[str, list[Run]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode, (script, learning, durable) in MODES.items():
                reset(url)
                if not learning:
                    set_learning(url, False)
                try:
                    results[mode].append(
                        pgbench(url, scripts[script], args.seconds, durable=durable, wal_io=wal_io and durable)
                    )
                finally:
                    if not learning:
                        set_learning(url, True)
        reset(url)
    print(
        f"machine: {machine()}, load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"{USERS:,} users, {outfits:,} outfits; wall time {time.monotonic() - began:.0f} s"
    )
    print(
        f"bulk: COPY of {rows:,} likes ({LIKES_PER_USER} per user), {args.bulk_rounds} alternating rounds per mode, "
        "each from an empty likes table after a checkpoint"
    )
    median = {learning: statistics.median(b.seconds for b in runs) for learning, runs in bulk.items()}
    for learning, runs in bulk.items():
        label = "learning triggers" if learning else "no learning triggers"
        print(
            f"  {label:<22} median {median[learning]:.3f} s ({rows / median[learning]:>9,.0f} likes/s)  "
            f"rounds {', '.join(f'{b.seconds:.3f}' for b in runs)} s  "
            f"WAL {statistics.median(b.wal_bytes for b in runs) / rows:,.0f} B/like"
        )
    print(
        f"  COPY ratio trigger / no trigger: {median[True] / median[False]:.2f}; "
        f"every trigger round: sum(likes_count) = {rows:,} and each user's likes_count = their likes"
    )
    print(
        f"single like: pgbench -M prepared -c 2 -j 2, {args.rounds} x {args.seconds} s per mode, "
        "fsync on; 'no flush': synchronous_commit off"
    )
    tps = {mode: statistics.median(r.tps for r in runs) for mode, runs in results.items()}
    latencies = {mode: [x for r in runs for x in r.latencies] for mode, runs in results.items()}
    p99 = {mode: pct(lat, 0.99) for mode, lat in latencies.items()}
    steady = {mode: pct([x for r in runs for x in r.steady], 0.99) for mode, runs in results.items()}
    for mode, runs in results.items():
        lat = latencies[mode]
        wal = f"WAL {sum(r.wal_bytes for r in runs) / len(lat):,.0f} B/like"
        counted = [r for r in runs if r.flushes]  # runs with pg_stat_io figures
        if counted:
            n = sum(r.flushes for r in counted)
            wal += (
                f", {n / sum(len(r.latencies) for r in counted):.2f} flushes/like "
                f"of {sum(r.flush_ms for r in counted) / n * 1000:.0f} us"
            )
        print(
            f"  {mode:<36} {tps[mode]:>8,.0f} tps   p50 {pct(lat, 0.5):.3f} ms  "
            f"p99 {p99[mode]:.3f} ms (after {WARM_UP_S} s: {steady[mode]:.3f} ms)  ({len(lat):,} likes; {wal})"
        )
    for suffix, note in (("", "durable"), (", no flush", "synchronous_commit off")):
        print(
            f"  {note}: ootd.like()/bare INSERT {tps['ootd.like()' + suffix] / tps['bare INSERT' + suffix]:.2f} "
            f"(goal >= 0.6); bare INSERT with learning / without "
            f"{tps['bare INSERT' + suffix] / tps['bare INSERT, no learning' + suffix]:.2f}"
        )


if __name__ == "__main__":
    main()
