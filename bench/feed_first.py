"""Benchmark (issue 16): every user's FIRST feed, ootd.feed against SELECT 1 and a seed-style pipeline.

One run, one fresh embedded server, 10,000 seeded users and one day of pools (offline nightly).
Each round measures, one psycopg connection each (autocommit, prepared statements, a reused cursor):
  (a) SELECT 1, as many calls as there are users;
  (b) SELECT * FROM ootd.feed(user, at, 3) for all 10,000 users, each once at the same instant:
      the first request of each user (a memo table, where the schema still has one, is emptied
      before the round and checked empty, so nothing warm is hit);
  (c) the seed-style pipeline for the same users: one Postgres round trip for the profile (city,
      zone, style documents, taste, weather, the pool's cluster id, likes), a GET of the cluster's
      pool as JSON from a private redis-server, and the five steps in Python (zoneinfo, veto with
      cascade, weighted scoring with numpy cosine, deterministic jitter, headline).
Within a round the three take turns in --slices slices (500 users each by default), in an order
that alternates slice by slice, so a neighbour's load on a shared machine falls on all three alike.
Reported: calls/s per round, median and spread, the ratios (b)/(a) (goal >= 0.5) and (b)/(c) (goal >= 4), backend and client CPU per
call from /proc, the pipeline's time split (Postgres, redis, Python), then EXPLAIN (ANALYZE,
BUFFERS) of one first request and pg_stat_statements (track = all, a separate diagnostic pass).

redis-server comes from the OS packages (installed with apt-get when missing and we are root);
the Python client from the `bench` extra: pip install -e ".[bench]".  Without either, (c) is skipped.
Usage: python -m bench.feed_first [--rounds 5] [--users 10000] [--slices 20] [--redis-unix-socket]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.common import machine
from cli.main import migrate
from db.connect import connect
from db.server import EmbeddedServer

DAY = date(2026, 4, 20)
AT = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
LIMIT = 3
RATIO_SELECT1_GOAL = 0.5
RATIO_PIPELINE_GOAL = 4.0
FEED_SQL = "SELECT * FROM ootd.feed(%s, %s, %s)"
CLK_TCK = os.sysconf("SC_CLK_TCK")
POOL_KEY = "ootd:pool:"

# The seed-style pipeline's one round trip: the profile, the user's weather on their local date
# and the pool that serves them (the same choice ootd.feed makes: the cluster's pool, else the
# latest of the same archetype and weather, else of the archetype, else any), and their likes.
PROFILE_SQL = """
SELECT u.city, u.timezone, u.style_dna, u.style_rules, u.taste, wx.condition, p.cluster_id, p.weather,
       (SELECT array_agg(l.outfit_id) FROM ootd.likes l WHERE l.user_id = u.id)
FROM ootd.users u
CROSS JOIN LATERAL (SELECT (%(at)s::timestamptz AT TIME ZONE u.timezone)::date AS day,
                           coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) x
LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                   WHERE w.city = u.city AND w.day <= x.day ORDER BY w.day DESC LIMIT 1) wx ON true
LEFT JOIN LATERAL (
    (SELECT p.cluster_id, p.weather FROM ootd.pools p
     WHERE p.archetype = x.archetype AND p.weather = wx.condition AND p.pool_date <= x.day
     ORDER BY p.pool_date DESC LIMIT 1)
    UNION ALL
    (SELECT p.cluster_id, p.weather FROM ootd.pools p
     WHERE p.archetype = x.archetype AND p.pool_date <= x.day
     ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
    UNION ALL
    (SELECT p.cluster_id, p.weather FROM ootd.pools p WHERE p.pool_date <= x.day
     ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
    UNION ALL
    (SELECT p.cluster_id, p.weather FROM ootd.pools p ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)
    LIMIT 1) p ON true
WHERE u.id = %(user)s"""

POOLS_SQL = """
SELECT o.cluster_id, json_agg(json_build_object('id', o.id, 'title', o.title, 'category', o.category,
                                                'color', o.color, 'daypart', o.daypart,
                                                'embedding', o.embedding::text::json) ORDER BY o.slot)::text
FROM ootd.outfits o GROUP BY o.cluster_id"""


# --------------------------------------------------------------------------- servers
@contextmanager
def bench_server() -> Iterator[tuple[str, bool]]:
    """(url, pg_stat_statements loaded): DATABASE_URL if set, else a fresh embedded server with the
    default settings plus pg_stat_statements preloaded (track = none: the diagnostic pass turns it
    on for its own session only, so the measured rounds pay nothing but the hook)."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"], False
        return
    home = Path(tempfile.mkdtemp(prefix="ootd-bench-first-"))
    server = EmbeddedServer(
        home, settings={"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track": "none"}
    )
    try:
        yield server.ensure_running(), True
    finally:
        try:
            server.stop("fast")
        finally:
            shutil.rmtree(home, ignore_errors=True)


def ensure_redis_server() -> tuple[str | None, str]:
    """(path of redis-server or None, why not)."""
    found = shutil.which("redis-server")
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "redis-server is not installed and we cannot apt-get it (not root, or no apt-get)"
    print("installing redis-server with apt-get (benchmark only) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]
    if subprocess.run(install, check=False, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        result = subprocess.run(install, check=False, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            return None, f"apt-get install redis-server failed: {result.stderr.strip()[-300:]}"
    found = shutil.which("redis-server")
    return (found, "") if found else (None, "apt-get installed redis-server but it is not on PATH")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server(exe: str, unix_socket: bool) -> Iterator[tuple[subprocess.Popen, dict]]:
    """A private redis-server on a loopback port (or a Unix socket), no persistence, in a temp dir;
    stopped (and the dir removed) on the way out, whatever happened."""
    work = Path(tempfile.mkdtemp(prefix="ootd-bench-redis-"))
    port = free_port()
    argv = [
        exe,
        "--port",
        "0" if unix_socket else str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work),
        "--daemonize",
        "no",
        "--logfile",
        str(work / "redis.log"),
    ]
    if unix_socket:
        argv += ["--unixsocket", str(work / "redis.sock"), "--unixsocketperm", "700"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kwargs = {"unix_socket_path": str(work / "redis.sock")} if unix_socket else {"host": "127.0.0.1", "port": port}
    try:
        import redis

        client = redis.Redis(**kwargs)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (work / "redis.log").read_text(errors="replace") if (work / "redis.log").exists() else ""
                    raise SystemExit(f"redis-server did not start:\n{log[-2000:]}")
                time.sleep(0.05)
        client.close()
        yield proc, kwargs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def cpu_ticks(pid: int | None) -> int:
    """utime + stime of a process, in clock ticks (0 when unreadable)."""
    if pid is None:
        return 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


# --------------------------------------------------------------------------- the seed-style pipeline
@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def occasion(hour: int, dayparts: set[str]) -> str:
    """What the served outfits are for (ootd._occasion)."""
    if dayparts == {"NightOut", "Daytime"}:
        return "today and tonight" if hour < 17 else "tonight and tomorrow"
    if "NightOut" in dayparts:
        return "tonight"
    if hour < 5:
        return "the day ahead"
    if hour < 12:
        return "your morning"
    if hour < 17:
        return "your afternoon"
    return "tomorrow"


_MIX1, _MIX2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_DAY0 = date(2000, 1, 1).toordinal()


def unit_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (outfit id, seed) mapped to [-1, 1): deterministic, no state."""
    z = ids * _GOLDEN + np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return z.view(np.int64) / 9223372036854775808.0


class SeedStylePipeline:
    """Profile from Postgres, pool JSON from redis, the last mile in Python."""

    def __init__(self, conn: psycopg.Connection, rds: Any, loads: Callable[[bytes], Any]):
        from psycopg.adapt import Loader
        from psycopg.types.json import set_json_loads

        class VectorLoader(Loader):  # pgvector's binary format: int16 dim, int16 unused, dim x float4 (big-endian)
            def load(self, data):
                return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float64)

        VectorLoader.format = psycopg.pq.Format.BINARY
        oid = conn.execute("SELECT 'public.vector'::regtype::oid").fetchone()[0]
        conn.adapters.register_loader(oid, VectorLoader)  # taste arrives as a numpy array
        set_json_loads(loads, conn)  # style documents parsed by orjson
        self.cur = conn.cursor(binary=True)
        self.rds = rds
        self.loads = loads
        w = conn.execute(
            "SELECT preferred_color, liked_category, category_affinity, cosine, daypart_priority, "
            "liked_decay, jitter FROM ootd.scoring_weights"
        ).fetchone()  # read once
        (
            self.w_color,
            self.w_liked_cat,
            self.w_affinity,
            self.w_cosine,
            self.w_daypart,
            self.w_liked_decay,
            self.w_jitter,
        ) = w
        self.weather_adj = dict(conn.execute("SELECT name, adjective FROM ootd.weather_conditions").fetchall())
        self.archetype_adj = dict(conn.execute("SELECT name, adjective FROM ootd.archetypes").fetchall())
        self.default_archetype = conn.execute("SELECT ootd.default_archetype()").fetchone()[0]
        self.t_pg = self.t_redis = self.t_py = 0.0

    def feed(self, user_id: int, at: datetime, limit: int = LIMIT) -> list[tuple]:
        t0 = time.perf_counter()
        self.cur.execute(PROFILE_SQL, {"user": user_id, "at": at}, prepare=True)
        row = self.cur.fetchone()
        t1 = time.perf_counter()
        if row is None:
            raise LookupError(f"unknown user {user_id}")
        blob = self.rds.get(POOL_KEY + row[6]) if row[6] else None
        t2 = time.perf_counter()
        result = self.rank(user_id, at, limit, row, blob)
        t3 = time.perf_counter()
        self.t_pg += t1 - t0
        self.t_redis += t2 - t1
        self.t_py += t3 - t2
        return result

    def rank(self, user_id: int, at: datetime, limit: int, row: tuple, blob: bytes | None) -> list[tuple]:
        city, tz, dna, rules, taste, weather, cluster, pool_weather, liked = row
        if blob is None:
            return []
        pool = self.loads(blob)
        n = len(pool)
        # 1. local time from the IANA zone; from 15:00 local NightOut has priority
        local = at.astimezone(zone(tz))
        hour = local.hour
        priority = "NightOut" if hour >= 15 else "Daytime"
        # 2. hard veto (disliked categories / colors), with the cascade when fewer than
        # min(limit, pool size) survive: relax entries strictest first (most outfits of this pool
        # blocked; ties by name) until that many are served
        bad_categories, bad_colors = rules.get("disliked_categories"), rules.get("disliked_colors")
        relaxed: list[str] = []
        keep = None  # None: every outfit survives
        if bad_categories or bad_colors:
            bad_categories, bad_colors = bad_categories or (), bad_colors or ()
            violations = []
            for o in pool:
                v = []
                if o["category"] in bad_categories:
                    v.append("disliked_categories:" + o["category"])
                if o["color"] in bad_colors:
                    v.append("disliked_colors:" + o["color"])
                violations.append(v)
            if sum(not v for v in violations) < min(limit, n):
                blocked: dict[str, int] = {}
                for v in violations:
                    for rule in v:
                        blocked[rule] = blocked.get(rule, 0) + 1
                order = sorted(blocked, key=lambda r: (-blocked[r], r))
                position = {r: i + 1 for i, r in enumerate(order)}
                levels = sorted(max((position[r] for r in v), default=0) for v in violations)
                relaxed = order[: levels[min(limit, n) - 1]]
                allowed = set(relaxed)
                keep = [allowed.issuperset(v) for v in violations]
            else:
                keep = [not v for v in violations]
        # 3. weighted scoring: multipliers, cosine (numpy), daypart bonus;
        # 4. plus a deterministic tie-break jitter from a hash of (user, outfit, local date)
        if taste is not None:
            emb = np.array([o["embedding"] for o in pool], dtype=np.float64)
            norms = np.sqrt(np.einsum("ij,ij->i", emb, emb)) * math.sqrt(taste @ taste)
            cosine = np.divide(emb @ taste, norms, out=np.zeros(n), where=norms > 0)
        else:
            cosine = np.zeros(n)
        ids = np.fromiter((o["id"] for o in pool), dtype=np.uint64, count=n)
        seed = user_id ^ (local.date().toordinal() - _DAY0)
        base = (self.w_cosine * cosine + self.w_jitter * unit_hash(ids, seed)).tolist()
        preferred = dna.get("preferred_colors") or ()
        liked_categories = rules.get("liked_categories") or ()
        affinity = dna.get("category_affinity") or {}
        liked_ids = liked or ()
        groups: list[list] = [[], [], [], []]  # (no veto broken, priority), (.., other), (relaxed, ..)
        for i, o in enumerate(pool):
            if keep is not None and not keep[i]:
                continue
            category, color = o["category"], o["color"]
            score = (
                (self.w_color if color in preferred else 1.0)
                * (self.w_liked_cat if category in liked_categories else 1.0)
                * (1.0 + self.w_affinity * math.log1p(max(float(affinity.get(category) or 0), 0.0)))
                * (self.w_liked_decay if o["id"] in liked_ids else 1.0)
            ) + base[i]
            group = (0 if keep is None or not violations[i] else 2) + (0 if o["daypart"] == priority else 1)
            groups[group].append((-(score + self.w_daypart) if group % 2 == 0 else -score, o["id"], o))
        # order: what breaks no veto first, then the priority daypart; within each, one outfit of each
        # category before any category's second, and of each color before any color's second; then
        # score, then outfit id
        served = []
        for group in groups:
            group.sort()
            categories: dict[str, int] = {}
            colors: dict[str, int] = {}
            keyed = []
            for item in group:
                o = item[2]
                nth_category = categories[o["category"]] = categories.get(o["category"], 0) + 1
                nth_color = colors[o["color"]] = colors.get(o["color"], 0) + 1
                keyed.append((nth_category > 1, nth_color > 1, item))
            keyed.sort(key=lambda k: (k[0], k[1], k[2][0], k[2][1]))
            served.extend(k[2] for k in keyed)
            if len(served) >= limit:
                break
        # 5. headline: the served pool's weather and archetype, the served outfits' occasion, the city
        adjectives = f"{self.weather_adj[pool_weather]} {self.archetype_adj[cluster.split('_')[1]]}"
        shown = {item[2]["daypart"] for item in served[:limit]}
        headline = (
            f"{'An' if adjectives[0] in 'aeiouAEIOU' else 'A'} {adjectives} look for {occasion(hour, shown)} in {city}"
        )
        return [
            (rank, o["id"], o["title"], o["category"], o["color"], o["daypart"], -neg, headline, cluster, relaxed)
            for rank, (neg, _, o) in enumerate(served[:limit], start=1)
        ]


# --------------------------------------------------------------------------- measurement
class Tally:
    """Totals of one workload over one round: calls, wall time, CPU ticks (backend, redis), client CPU."""

    def __init__(self, name: str, backend_pid: int | None, redis_pid: int | None = None):
        self.name, self.backend_pid, self.redis_pid = name, backend_pid, redis_pid
        self.calls, self.seconds, self.backend_ticks, self.redis_ticks, self.client_s = 0, 0.0, 0, 0, 0.0
        self.split = [0.0, 0.0, 0.0]  # the pipeline's Postgres, redis, Python seconds

    def run(self, calls: int, body: Callable[[], None]) -> None:
        ticks_pg, ticks_redis = cpu_ticks(self.backend_pid), cpu_ticks(self.redis_pid)
        cpu, started = time.process_time(), time.perf_counter()
        body()
        self.seconds += time.perf_counter() - started
        self.client_s += time.process_time() - cpu
        self.backend_ticks += cpu_ticks(self.backend_pid) - ticks_pg
        self.redis_ticks += cpu_ticks(self.redis_pid) - ticks_redis
        self.calls += calls

    def result(self) -> dict:
        per_call = 1e6 / self.calls
        return {
            "name": self.name,
            "calls": self.calls,
            "seconds": self.seconds,
            "rate": self.calls / self.seconds,
            "backend_us": self.backend_ticks / CLK_TCK * per_call,
            "client_us": self.client_s * per_call,
            "redis_us": self.redis_ticks / CLK_TCK * per_call,
            "pg_us": self.split[0] * per_call,
            "redis_rt_us": self.split[1] * per_call,
            "py_us": self.split[2] * per_call,
        }


def has_memo(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('ootd.feed_memo') IS NOT NULL").fetchone()[0]


def forget_feeds(admin: psycopg.Connection) -> None:
    """Make the next request of every user its first: empty the memo where the schema still has one."""
    if has_memo(admin):
        admin.execute("TRUNCATE ootd.feed_memo")
        left = admin.execute("SELECT count(*) FROM ootd.feed_memo").fetchone()[0]
        if left:
            raise SystemExit(f"ootd.feed_memo still holds {left} rows: the round would not be first requests")


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def same_feed(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x[:6] != tuple(y[:6]) or x[7:9] != tuple(y[7:9]) or list(x[9]) != list(y[9]) or abs(x[6] - y[6]) > 1e-5:
            return False
    return True


def print_plan(title: str, lines: list[str]) -> None:
    print(f"\n{title}")
    for line in lines:
        print(f"    {line}")


def diagnostics(url: str, users: list[int], pgss: bool, pipeline_ok: bool) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of first requests on a warm session, then pg_stat_statements over a
    separate pass (2,000 first requests)."""
    with psycopg.connect(url, autocommit=True) as conn:
        forget_feeds(conn)
        for u in users[-50:]:  # the session's one-off costs (PL/pgSQL compiled, catalogs, zone files)
            conn.execute(FEED_SQL, (u, AT, LIMIT)).fetchall()
            if pipeline_ok:
                conn.execute(PROFILE_SQL, {"user": u, "at": AT}).fetchall()

        def explain(sql: str, params: Any) -> tuple[list[str], float]:
            plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)]
            return plan, float(next(x for x in plan if x.startswith("Execution Time")).split()[2])

        sample = users[:200]
        timings = []
        for u in sample:
            plan, ms = explain(FEED_SQL, (u, AT, LIMIT))
            timings.append(ms)
        print_plan(
            f"EXPLAIN (ANALYZE, BUFFERS) of a first request, ootd.feed({sample[-1]}, "
            f"'{AT:%Y-%m-%d %H:%M%z}', 3), the last of {len(sample)} on a warm session "
            f"(execution median {statistics.median(timings):.3f} ms, "
            f"p95 {sorted(timings)[int(0.95 * len(timings))]:.3f} ms):",
            plan,
        )
        if pipeline_ok:
            timings = []
            for u in sample:
                plan, ms = explain(PROFILE_SQL, {"user": u, "at": AT})
                timings.append(ms)
            print_plan(
                f"EXPLAIN (ANALYZE, BUFFERS) of the pipeline's profile query (user {sample[-1]}; execution "
                f"median {statistics.median(timings):.3f} ms over {len(sample)}):",
                plan,
            )
        if not pgss:
            print("\npg_stat_statements: not loaded on this server (DATABASE_URL given); skipped")
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SET pg_stat_statements.track = 'all'")
            forget_feeds(conn)
            conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error as exc:
            print(f"\npg_stat_statements: unavailable ({exc.sqlstate}: {str(exc).strip()}); skipped")
            return
        sample = users[:2000]
        with conn.cursor() as cur:
            for u in sample:
                cur.execute(FEED_SQL, (u, AT, LIMIT), prepare=True)
                cur.fetchall()
            if pipeline_ok:
                for u in sample:
                    cur.execute(PROFILE_SQL, {"user": u, "at": AT}, prepare=True)
                    cur.fetchall()
        conn.execute("SET pg_stat_statements.track = 'none'")
        rows = conn.execute("""
            SELECT calls, total_exec_time, mean_exec_time, rows, shared_blks_hit + shared_blks_read, toplevel,
                   regexp_replace(query, '\\s+', ' ', 'g')
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query !~* 'pg_stat_statements'
            ORDER BY total_exec_time DESC LIMIT 12""").fetchall()
    print(
        f"\npg_stat_statements (track = all) over {len(sample):,} first requests"
        f"{' and as many profile queries' if pipeline_ok else ''}; nested statements included, "
        "top-level ones marked *:"
    )
    print(f"    {'calls':>7} {'total ms':>9} {'mean us':>8} {'rows':>7} {'blocks/call':>11}  query")
    for calls, total, mean, nrows, blocks, toplevel, query in rows:
        print(
            f"    {calls:>7,} {total:>9.1f} {mean * 1000:>8.1f} {nrows:>7,} {blocks / max(calls, 1):>11.1f}  "
            f"{'*' if toplevel else ' '}{query[:110]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--slices", type=int, default=20, help="turns per round (the workloads alternate)")
    parser.add_argument(
        "--budget",
        type=float,
        default=210.0,
        help="start no new round (after the second) once the run has taken this many seconds",
    )
    parser.add_argument(
        "--redis-unix-socket",
        action="store_true",
        help="redis on a Unix socket instead of a loopback TCP port (PostgreSQL uses one)",
    )
    parser.add_argument("--no-diagnostics", action="store_true", help="skip EXPLAIN and pg_stat_statements")
    args = parser.parse_args()
    begun = time.perf_counter()

    # (c)'s prerequisites, checked first so that a skip is said up front
    skip_reason = ""
    try:
        import orjson
        import redis
    except ImportError as exc:
        skip_reason = f"the Python client is missing ({exc.name}): pip install -e '.[bench]'"
    redis_exe = None
    if not skip_reason:
        redis_exe, skip_reason = ensure_redis_server()
    if skip_reason:
        print(f"(c) seed-style pipeline SKIPPED: {skip_reason}", flush=True)

    users = [(i * 7919) % args.users + 1 for i in range(args.users)]  # a fixed permutation of 1..N
    results: list[dict[str, dict]] = []
    with ExitStack() as stack:
        url, pgss = stack.enter_context(bench_server())
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, args.users, 42)
        run_nightly(url, NightlyConfig(day=DAY, llm="offline"))
        admin = stack.enter_context(psycopg.connect(url, autocommit=True))
        admin.execute("VACUUM ANALYZE")
        server_version = admin.execute("SHOW server_version").fetchone()[0]
        memo = has_memo(admin)
        print(
            f"setup done in {time.perf_counter() - begun:.1f} s: {args.users:,} users, "
            f"{admin.execute('SELECT count(*) FROM ootd.pools').fetchone()[0]} pools of {DAY}; "
            f"ootd.feed_memo {'present (emptied before every feed round)' if memo else 'absent (pure-read feed)'}",
            flush=True,
        )

        one_conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        feed_conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        one_cur, feed_cur = one_conn.cursor(), feed_conn.cursor()
        pids = {"one": one_conn.info.backend_pid, "feed": feed_conn.info.backend_pid}

        pipeline = redis_pid = None
        redis_version = ""
        if not skip_reason:
            import redis

            rproc, rkwargs = stack.enter_context(redis_server(redis_exe, args.redis_unix_socket))
            rds = redis.Redis(**rkwargs)
            stack.callback(rds.close)
            pools = admin.execute(POOLS_SQL).fetchall()
            rds.mset({POOL_KEY + cluster: blob for cluster, blob in pools})
            redis_version = rds.info("server")["redis_version"]
            redis_pid = rproc.pid
            pipe_conn = stack.enter_context(psycopg.connect(url, autocommit=True))
            pipeline = SeedStylePipeline(pipe_conn, rds, orjson.loads)
            pids["pipe"] = pipe_conn.info.backend_pid
            sizes = [len(b) for _, b in pools]
            print(
                f"redis {redis_version} on {'a Unix socket' if args.redis_unix_socket else 'a loopback TCP port'}: "
                f"{len(pools)} pools as JSON, {statistics.mean(sizes) / 1024:.1f} KiB each",
                flush=True,
            )

        def run_select1(calls: int) -> Callable[[], None]:
            def body() -> None:
                for _ in range(calls):
                    one_cur.execute("SELECT 1", prepare=True)
                    one_cur.fetchall()

            return body

        def run_feed(part: list[int]) -> Callable[[], None]:
            def body() -> None:
                for u in part:
                    feed_cur.execute(FEED_SQL, (u, AT, LIMIT), prepare=True)
                    feed_cur.fetchall()

            return body

        def run_pipeline(part: list[int]) -> Callable[[], None]:
            def body() -> None:
                for u in part:
                    pipeline.feed(u, AT)

            return body

        # warm-up: plans prepared, catalogs and zone files loaded; then nothing of it stays in the memo
        for u in users[:300]:
            one_cur.execute("SELECT 1", prepare=True)
            one_cur.fetchall()
            feed_cur.execute(FEED_SQL, (u, AT, LIMIT), prepare=True)
            feed_cur.fetchall()
            if pipeline:
                pipeline.feed(u, AT)

        # correctness: the pipeline must serve what ootd.feed serves (same items, order, headline)
        agree = None
        if pipeline:
            check = users[:1000]
            forget_feeds(admin)
            expected = [feed_conn.execute(FEED_SQL, (u, AT, LIMIT)).fetchall() for u in check]
            agree = (sum(same_feed(pipeline.feed(u, AT), e) for u, e in zip(check, expected)), len(check))
            print(
                f"pipeline vs ootd.feed on {len(check):,} users: {agree[0]:,} identical feeds "
                "(items, order, headline, cluster, relaxed rules; scores within 1e-5)",
                flush=True,
            )

        # Each round serves every user once (each user's first request: the memo, if any, is emptied
        # first) and calls SELECT 1 as many times, in --slices slices; the three workloads take turns
        # slice by slice, in an order that alternates, so a neighbour's load on a shared machine
        # falls on all three alike.
        names = {"one": "(a) SELECT 1", "feed": "(b) ootd.feed, first request", "pipe": "(c) seed-style pipeline"}
        keys = ["one", "feed", "pipe"] if pipeline else ["one", "feed"]
        size = -(-len(users) // args.slices)
        parts = [users[i : i + size] for i in range(0, len(users), size)]
        for r in range(args.rounds):
            if r >= 2 and time.perf_counter() - begun > args.budget:
                print(
                    f"stopping after {r} rounds: the run has taken {time.perf_counter() - begun:.0f} s "
                    f"(--budget {args.budget:g} s)",
                    flush=True,
                )
                break
            forget_feeds(admin)
            tallies = {k: Tally(names[k], pids[k], redis_pid if k == "pipe" else None) for k in keys}
            for i, part in enumerate(parts):
                for key in keys if (r + i) % 2 == 0 else keys[::-1]:
                    if key == "one":
                        tallies[key].run(len(part), run_select1(len(part)))
                    elif key == "feed":
                        tallies[key].run(len(part), run_feed(part))
                    else:
                        pipeline.t_pg = pipeline.t_redis = pipeline.t_py = 0.0
                        tallies[key].run(len(part), run_pipeline(part))
                        split = tallies[key].split
                        split[0] += pipeline.t_pg
                        split[1] += pipeline.t_redis
                        split[2] += pipeline.t_py
            got = {k: t.result() for k, t in tallies.items()}
            results.append(got)
            line = ", ".join(f"{names[k]} {got[k]['rate']:,.0f}/s" for k in keys)
            print(
                f"round {r + 1}: {line}; (b)/(a) {got['feed']['rate'] / got['one']['rate']:.2f}"
                + (f", (b)/(c) {got['feed']['rate'] / got['pipe']['rate']:.2f}" if pipeline else ""),
                flush=True,
            )

        if not args.no_diagnostics:
            diagnostics(url, users, pgss, pipeline is not None)
        stack.close()  # stops redis and postgres before the summary

    summary(args, results, server_version, redis_version, memo, agree, skip_reason, time.perf_counter() - begun)


def summary(
    args: argparse.Namespace,
    results: list[dict[str, dict]],
    server_version: str,
    redis_version: str,
    memo: bool,
    agree: tuple[int, int] | None,
    skip_reason: str,
    wall: float,
) -> None:
    def col(key: str, field: str) -> list[float]:
        return [r[key][field] for r in results]

    print("\n" + "=" * 100)
    print(
        f"bench.feed_first  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  machine: {machine()}  "
        f"PostgreSQL {server_version.split()[0]}"
        + (
            f", redis {redis_version} ({'Unix socket' if args.redis_unix_socket else 'loopback TCP'})"
            if redis_version
            else ""
        )
    )
    print(
        f"{args.users:,} users, each user's first request at {AT:%Y-%m-%d %H:%M} UTC, limit {LIMIT}, "
        f"{len(results)} rounds of {args.slices} alternating slices; feed memo: {'present, emptied per round' if memo else 'none'}; "
        f"wall {wall:.0f} s"
    )
    print("-" * 100)
    print(f"{'workload':<32} {'calls/s median (min-max)':>26} {'backend CPU us/call':>20} {'client CPU us/call':>19}")
    keys = [k for k in ("one", "feed", "pipe") if results and k in results[0]]
    for key in keys:
        print(
            f"{results[0][key]['name']:<32} {spread(col(key, 'rate')):>26} "
            f"{spread(col(key, 'backend_us'), '{:.0f}'):>20} {spread(col(key, 'client_us'), '{:.0f}'):>19}"
        )
    if "pipe" in keys:
        print(
            f"{'':<32} (c) per request: Postgres round trip {statistics.median(col('pipe', 'pg_us')):.0f} us, "
            f"redis GET {statistics.median(col('pipe', 'redis_rt_us')):.0f} us, "
            f"Python steps {statistics.median(col('pipe', 'py_us')):.0f} us; "
            f"redis-server CPU {statistics.median(col('pipe', 'redis_us')):.0f} us"
        )
    print("-" * 100)
    ab = [r["feed"]["rate"] / r["one"]["rate"] for r in results]
    print(
        f"(b)/(a) ootd.feed / SELECT 1:     median {statistics.median(ab):.2f}  rounds "
        f"{', '.join(f'{x:.2f}' for x in ab)}  goal >= {RATIO_SELECT1_GOAL}: "
        f"{'PASS' if statistics.median(ab) >= RATIO_SELECT1_GOAL else 'FAIL'}"
    )
    if "pipe" in keys:
        bc = [r["feed"]["rate"] / r["pipe"]["rate"] for r in results]
        print(
            f"(b)/(c) ootd.feed / seed-style:   median {statistics.median(bc):.2f}  rounds "
            f"{', '.join(f'{x:.2f}' for x in bc)}  goal >= {RATIO_PIPELINE_GOAL:g}: "
            f"{'PASS' if statistics.median(bc) >= RATIO_PIPELINE_GOAL else 'FAIL'}"
        )
        print(f"pipeline agrees with ootd.feed on {agree[0]:,} of {agree[1]:,} users checked")
    else:
        print(f"(b)/(c): not measured, {skip_reason}")
    print("=" * 100)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
