"""Benchmark (issue 16): every user's FIRST feed, ootd.feed against SELECT 1 and a seed-style pipeline.

One run, one fresh embedded server, 10,000 seeded users and one day of pools (offline nightly).
Each round measures, one psycopg connection each (autocommit, prepared statements, a reused cursor):
  (a) SELECT 1, as many calls as there are users;
  (b) SELECT * FROM ootd.feed(user, at, 3) for all 10,000 users, each once at the same instant:
      the first request of each user (a memo table, where the schema still has one, is emptied
      before the round and checked empty, so nothing warm is hit);
  (c) the seed-style pipeline for the same users: one Postgres round trip for the profile (city,
      zone, style documents, taste, weather, the served pool's date, cluster id and weather, likes),
      one MGET from a private redis-server (the served pool's outfits of the other daypart, and the
      priority daypart's outfits of every pool of that date and weather: the served pool's own and
      its neighbours'; each as JSON columns plus raw float4 embeddings), and the five steps in
      Python: zoneinfo; veto with the cascade over all candidates; weighted scoring (numpy cosine,
      PostgreSQL's own jitter hash); ranking (clean, then priority daypart, then each category's
      best, then each color's best among those, then score); headline (the served pool's weather,
      the archetype of the pool the first item was drawn from, the occasion, the city).
      With scoring_weights.neighbour_pools false it reads the served pool's two dayparts instead.
Before the rounds, 1,000 users' feeds from (b) and (c) are compared, with neighbour_pools as it is
and flipped (must be identical: items, order, headline, cluster, relaxed rules; scores within 1e-5).
Within a round the three take turns in --slices slices (500 users each by default), in an order
that alternates slice by slice, so a neighbour's load on a shared machine falls on all three alike.
  (d) (issue 28) the floor: the query ootd._served runs (the served row's rows), as a plain prepared
      statement with no function around it: one index read returning what ootd.feed returns.
Reported: calls/s per round, median and spread, the ratios (b)/(a) (goal >= 0.5) and (b)/(c) (goal >= 4), (d)/(a), backend and client CPU per
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
# (d) the floor: the query ootd._served runs (issue 28), as a plain prepared statement with no function
# around it: what one index read returning these rows costs a client (checked equal to ootd.feed below).
FLOOR_SQL = """
    SELECT generate_subscripts(f.outfit_ids, 1), unnest(f.outfit_ids), unnest(f.titles), unnest(f.categories),
           unnest(f.colors), unnest(f.dayparts), unnest(f.scores),
           f.headlines[width_bucket(%(at)s, f.headline_from)], f.cluster_id, f.relaxed_rules, f.variant
    FROM ootd.served_feeds f
    WHERE f.user_id = %(user)s AND f.valid_from <= %(at)s AND %(at)s < f.valid_until AND f.feed_limit = %(limit)s
      AND f.inputs_version = (SELECT s.version FROM ootd.serving_inputs s)
      AND current_setting('ootd.inputs_changed', true) IS DISTINCT FROM 'on'
    ORDER BY 1
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The redis layout: per pool and daypart, and per (pool date, weather, daypart), a JSON list of pools
# [{"cluster", "archetype", "daypart", "id": [...], "title": [...], "category": [...], "color": [...]}] (columns),
# and beside it (key + EMB_SUFFIX) those outfits' embeddings, in the same order, as raw float4 (pgvector's own):
#   ootd:pool:<cluster_id>:<daypart>              that pool's outfits of that daypart (cluster ids carry the date);
#   ootd:pools:<pool_date>:<weather>:<daypart>    that daypart's outfits of every pool of that date and weather
#                                                 (the served pool's own and its neighbours', by cluster id).
# A feed reads them in one MGET: the served pool's other daypart and its (date, weather, priority daypart)
# bucket; without neighbour pools (scoring_weights.neighbour_pools false), the served pool's two dayparts.
POOL_KEY = "ootd:pool:{}:{}"
BUCKET_KEY = "ootd:pools:{}:{}:{}"
EMB_SUFFIX = ":emb"

# The seed-style pipeline's one round trip: the profile, the user's weather on their local date,
# the pool that serves them (the same choice ootd.feed makes: the cluster's pool, else the latest
# of the same archetype and weather, else of the archetype, else any) with its date and weather,
# and their likes.
PROFILE_SQL = """
SELECT u.city, u.timezone, u.style_dna, u.style_rules, u.taste, wx.condition, p.pool_date, p.cluster_id, p.weather,
       (SELECT array_agg(l.outfit_id) FROM ootd.likes l WHERE l.user_id = u.id)
FROM ootd.users u
CROSS JOIN LATERAL (SELECT (%(at)s::timestamptz AT TIME ZONE u.timezone)::date AS day,
                           coalesce(u.style_dna ->> 'archetype', ootd.default_archetype()) AS archetype) x
LEFT JOIN LATERAL (SELECT w.condition FROM ootd.weather_daily w
                   WHERE w.city = u.city AND w.day <= x.day ORDER BY w.day DESC LIMIT 1) wx ON true
LEFT JOIN LATERAL (
    (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
     WHERE p.archetype = x.archetype AND p.weather = wx.condition AND p.pool_date <= x.day
     ORDER BY p.pool_date DESC LIMIT 1)
    UNION ALL
    (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
     WHERE p.archetype = x.archetype AND p.pool_date <= x.day
     ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
    UNION ALL
    (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p WHERE p.pool_date <= x.day
     ORDER BY p.pool_date DESC, p.members DESC, p.cluster_id LIMIT 1)
    UNION ALL
    (SELECT p.pool_date, p.cluster_id, p.weather FROM ootd.pools p
     ORDER BY p.pool_date, p.members DESC, p.cluster_id LIMIT 1)
    LIMIT 1) p ON true
WHERE u.id = %(user)s"""

# Every pool's outfits of each daypart as one JSON object and one float4 array, in bucket order.
POOLS_SQL = """
SELECT p.pool_date, p.weather, o.daypart, p.cluster_id,
       json_build_object('cluster', p.cluster_id, 'archetype', p.archetype, 'daypart', o.daypart,
                         'id', json_agg(o.id ORDER BY o.slot), 'title', json_agg(o.title ORDER BY o.slot),
                         'category', json_agg(o.category ORDER BY o.slot),
                         'color', json_agg(o.color ORDER BY o.slot))::text,
       array_agg(o.embedding::real[] ORDER BY o.slot)
FROM ootd.pools p JOIN ootd.outfits o ON o.pool_date = p.pool_date AND o.cluster_id = p.cluster_id
GROUP BY p.pool_date, p.weather, o.daypart, p.cluster_id, p.archetype
ORDER BY p.pool_date, p.weather, o.daypart, p.cluster_id"""


def redis_layout(rows: list[tuple]) -> dict[str, bytes]:
    """The keys and values to SET, from POOLS_SQL's rows."""
    values: dict[str, bytes] = {}
    buckets: dict[str, list[tuple[str, bytes]]] = {}
    for pool_date, weather, daypart, cluster, meta, embeddings in rows:
        emb = np.array(embeddings, dtype="<f4").tobytes()  # float4 printed, parsed back exactly
        values[POOL_KEY.format(cluster, daypart)] = f"[{meta}]".encode()
        values[POOL_KEY.format(cluster, daypart) + EMB_SUFFIX] = emb
        buckets.setdefault(BUCKET_KEY.format(pool_date, weather, daypart), []).append((meta, emb))
    for key, pools in buckets.items():
        values[key] = f"[{','.join(meta for meta, _ in pools)}]".encode()
        values[key + EMB_SUFFIX] = b"".join(emb for _, emb in pools)
    return values


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


_M32 = 0xFFFFFFFF
_DAY0 = date(2000, 1, 1).toordinal()


def _rotl(x: Any, k: int) -> Any:
    """32-bit rotate left, of a Python int or a numpy uint32 array."""
    return ((x << k) | (x >> (32 - k))) & _M32


def unit_hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """PostgreSQL's hashint8extended(id, seed) / 2^63 (ootd._jitter without its scale), in [-1, 1), for
    an array of outfit ids: Jenkins' lookup3 (hash_uint32_extended of the id's folded halves)."""
    a = b = c = (0x9E3779B9 + 4 + 3923095) & _M32
    seed &= 0xFFFFFFFFFFFFFFFF
    if seed:  # mix(a, b, c), once per request
        a, b = (a + (seed >> 32)) & _M32, (b + seed) & _M32
        a = ((a - c) & _M32) ^ _rotl(c, 4)
        c = (c + b) & _M32
        b = ((b - a) & _M32) ^ _rotl(a, 6)
        a = (a + c) & _M32
        c = ((c - b) & _M32) ^ _rotl(b, 8)
        b = (b + a) & _M32
        a = ((a - c) & _M32) ^ _rotl(c, 16)
        c = (c + b) & _M32
        b = ((b - a) & _M32) ^ _rotl(a, 19)
        a = (a + c) & _M32
        c = ((c - b) & _M32) ^ _rotl(b, 4)
        b = (b + a) & _M32
    lo = (ids & np.uint64(_M32)) ^ (ids >> np.uint64(32))  # ids >= 0: low half ^= high half
    a = lo.astype(np.uint32) + np.uint32(a)  # final(a, b, c), per outfit
    c = ((c ^ b) - _rotl(b, 14)) & _M32
    a = (a ^ np.uint32(c)) - np.uint32(_rotl(c, 11))
    b = (np.uint32(b) ^ a) - _rotl(a, 25)
    c = (np.uint32(c) ^ b) - _rotl(b, 16)
    a = (a ^ c) - _rotl(c, 4)
    b = (b ^ a) - _rotl(a, 14)
    c = (c ^ b) - _rotl(b, 24)
    return ((b.astype(np.uint64) << np.uint64(32)) | c.astype(np.uint64)).view(np.int64) / 9223372036854775808.0


class SeedStylePipeline:
    """Profile from Postgres, the candidates from redis (JSON + float4), the last mile in Python."""

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
        self.conn = conn
        self.cur = conn.cursor(binary=True)
        self.rds = rds
        self.loads = loads
        self.load_weights()
        self.weather_adj = dict(conn.execute("SELECT name, adjective FROM ootd.weather_conditions").fetchall())
        self.archetype_adj = dict(conn.execute("SELECT name, adjective FROM ootd.archetypes").fetchall())
        self.default_archetype = conn.execute("SELECT ootd.default_archetype()").fetchone()[0]
        self.t_pg = self.t_redis = self.t_py = 0.0

    def load_weights(self) -> None:
        """Read ootd.scoring_weights (once at start-up; again after the bench changes them)."""
        w = self.conn.execute("SELECT to_jsonb(w) FROM ootd.scoring_weights w").fetchone()[0]
        self.w_color, self.w_liked_cat = w["preferred_color"], w["liked_category"]
        self.w_affinity, self.w_cosine, self.w_daypart = w["category_affinity"], w["cosine"], w["daypart_priority"]
        self.w_liked_decay = w["liked_decay"]
        self.w_jitter = w["jitter"]
        self.w_archetype = w.get("archetype", 0.0)  # absent before migration 0018
        self.neighbours = w.get("neighbour_pools", False)  # absent before migration 0013

    def feed(self, user_id: int, at: datetime, limit: int = LIMIT) -> list[tuple]:
        t0 = time.perf_counter()
        self.cur.execute(PROFILE_SQL, {"user": user_id, "at": at}, prepare=True)
        row = self.cur.fetchone()
        t1 = time.perf_counter()
        if row is None:
            raise LookupError(f"unknown user {user_id}")
        # 1. local time from the IANA zone; from 15:00 local NightOut has priority
        local = at.astimezone(zone(row[1]))
        priority = "NightOut" if local.hour >= 15 else "Daytime"
        other = "Daytime" if priority == "NightOut" else "NightOut"
        pool_date, cluster, pool_weather = row[6], row[7], row[8]
        t2 = time.perf_counter()
        if cluster is None:
            keys = []
        elif self.neighbours:  # the served pool's other daypart + every same-weather pool's priority daypart
            keys = [POOL_KEY.format(cluster, other), BUCKET_KEY.format(pool_date, pool_weather, priority)]
        else:
            keys = [POOL_KEY.format(cluster, other), POOL_KEY.format(cluster, priority)]
        blobs = self.rds.mget(keys + [k + EMB_SUFFIX for k in keys]) if keys else []
        t3 = time.perf_counter()
        result = self.rank(user_id, local, priority, limit, row, blobs)
        t4 = time.perf_counter()
        self.t_pg += t1 - t0
        self.t_redis += t3 - t2
        self.t_py += (t2 - t1) + (t4 - t3)
        return result

    def rank(
        self, user_id: int, local: datetime, priority: str, limit: int, row: tuple, blobs: list[bytes | None]
    ) -> list[tuple]:
        city, _, dna, rules, taste, _, _, cluster, pool_weather, liked = row
        # the candidates (columns), each with its daypart and the archetype of the pool it was drawn from
        ids: list[int] = []
        titles: list[str] = []
        categories: list[str] = []
        colors: list[str] = []
        dayparts: list[str] = []
        origin: list[str] = []
        half = len(blobs) // 2
        for blob in blobs[:half]:
            for drawn in self.loads(blob) if blob else ():
                ids += drawn["id"]
                titles += drawn["title"]
                categories += drawn["category"]
                colors += drawn["color"]
                dayparts += [drawn["daypart"]] * len(drawn["id"])
                origin += [drawn["archetype"]] * len(drawn["id"])
        n = len(ids)
        if n == 0:
            return []
        # 2. hard veto (disliked categories / colors), with the cascade when fewer than
        # min(limit, candidates) survive: relax entries strictest first (most candidates blocked;
        # ties by name) until that many are served
        bad_categories, bad_colors = rules.get("disliked_categories") or (), rules.get("disliked_colors") or ()
        relaxed: list[str] = []
        clean = keep = None  # None: no candidate breaks a veto
        if bad_categories or bad_colors:
            violations = [
                (["disliked_categories:" + category] if category in bad_categories else [])
                + (["disliked_colors:" + color] if color in bad_colors else [])
                for category, color in zip(categories, colors)
            ]
            clean = [not v for v in violations]
            keep = clean
            if sum(clean) < min(limit, n):
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
        # 3. weighted scoring (ootd._score, the same terms in the same order, elementwise in numpy):
        # multipliers + cosine (over the float4 embeddings) + daypart bonus + the tie-break jitter
        # of (user, outfit, local date)
        ids_np = np.array(ids, dtype=np.uint64)
        if taste is not None:
            emb = np.frombuffer(b"".join(b for b in blobs[half:] if b), dtype="<f4").reshape(n, -1).astype(np.float64)
            norms = np.sqrt(np.einsum("ij,ij->i", emb, emb) * (taste @ taste))
            cosine = np.divide(emb @ taste, norms, out=np.zeros(n), where=norms > 0)
            cosine = 1.0 - (1.0 - np.clip(cosine, -1.0, 1.0))  # 1 - pgvector's cosine distance
        else:
            cosine = np.zeros(n)
        preferred = dna.get("preferred_colors") or ()
        liked_categories = rules.get("liked_categories") or ()
        affinity = dna.get("category_affinity") or {}
        liked_ids = set(liked or ())
        boosts = {  # category -> (category boost, affinity boost)
            category: (
                self.w_liked_cat if category in liked_categories else 1.0,
                1.0 + self.w_affinity * math.log(1.0 + max(float(affinity.get(category) or 0), 0.0)),
            )
            for category in set(categories)
        }
        # the archetype multiplier: the profile's affinity to each candidate's pool archetype
        # (ootd._archetype_affinities: the stated archetype at 1 before any like)
        archetype_affinity = dna.get("archetype_affinity") or {dna.get("archetype") or self.default_archetype: 1}
        archetype_boost = {
            a: 1.0 + self.w_archetype * math.log(1.0 + max(float(archetype_affinity.get(a) or 0), 0.0))
            for a in set(origin)
        }
        first = np.array([d == priority for d in dayparts])
        score = (
            np.array([self.w_color if c in preferred else 1.0 for c in colors])
            * np.array([boosts[c][0] for c in categories])
            * np.array([boosts[c][1] for c in categories])
            * np.array([archetype_boost[a] for a in origin])
            * np.array([self.w_liked_decay if i in liked_ids else 1.0 for i in ids])
            + self.w_cosine * cosine
            + np.where(first, self.w_daypart, 0.0)
            + self.w_jitter * unit_hash(ids_np, user_id ^ (local.date().toordinal() - _DAY0))
        )
        # 4. order: the served (clean, priority) groups in turn, what breaks no veto first, then the
        # relaxed, the priority daypart first in each; within a group each category's best (score,
        # then id) before any category's second, and among each of those two sets each color's best
        # before its second; then score, then id.  A scan in score order finds the items of the
        # first kind (category's best, color's best) in order, so it stops once it has enough.
        group = np.where(first, 0, 1) + (0 if clean is None else np.where(clean, 0, 2))
        if keep is not None:
            group = np.where(keep, group, 4)  # vetoed: never served
        order = np.lexsort((ids_np, -score, group))
        in_group = group[order]
        served: list[int] = []
        for g in range(4):
            need = limit - len(served)
            kinds: tuple[list[int], ...] = ([], [], [], [])  # (second of category, second of color) = 00 01 10 11
            seen_categories: set[str] = set()
            seen_colors: set[tuple[bool, str]] = set()
            for i in order[in_group == g].tolist():
                second_of_category = categories[i] in seen_categories
                seen_categories.add(categories[i])
                second_of_color = (second_of_category, colors[i]) in seen_colors
                seen_colors.add((second_of_category, colors[i]))
                kinds[2 * second_of_category + second_of_color].append(i)
                if len(kinds[0]) == need:
                    break
            served += (kinds[0] + kinds[1] + kinds[2] + kinds[3])[:need]
            if len(served) == limit:
                break
        if not served:
            return []
        # 5. headline, once: the served pool's weather, the archetype more than half of the served
        # items were drawn from (none without one), the occasion of the served items, the city
        shown = [origin[i] for i in served]
        majority = [a for a in set(shown) if 2 * shown.count(a) > len(shown)]
        adjectives = " ".join([self.weather_adj[pool_weather]] + [self.archetype_adj[a] for a in majority])
        headline = (
            f"{'An' if adjectives[0] in 'aeiouAEIOU' else 'A'} {adjectives} look for "
            f"{occasion(local.hour, {dayparts[i] for i in served})} in {city}"
        )
        scores = score.tolist()
        return [
            (rank, ids[i], titles[i], categories[i], colors[i], dayparts[i], scores[i], headline, cluster, relaxed)
            for rank, i in enumerate(served, start=1)
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


def served_ahead(url: str, admin: psycopg.Connection, users: list[int]) -> dict[str, float]:
    """Write every user's served feed (ootd.refresh_feeds, as the nightly does); how many first requests at AT
    read one, and the table's bytes per user.  (Schemas before 0020 have none: all zero.)"""
    if admin.execute("SELECT to_regclass('ootd.served_feeds') IS NULL").fetchone()[0]:
        return {"seconds": 0.0, "ms_per_user": 0.0, "served": 0, "bytes_per_user": 0.0}
    from batch.feeds import refresh_feeds

    report = refresh_feeds(url, AT, DAY, jobs=2)
    admin.execute("VACUUM ANALYZE ootd.served_feeds")
    served = admin.execute(
        "SELECT count(*) FROM unnest(%s::bigint[]) u(id) WHERE EXISTS (SELECT 1 FROM ootd._served(u.id, %s, %s))",
        (users, AT, LIMIT),
    ).fetchone()[0]
    size = admin.execute("SELECT pg_total_relation_size('ootd.served_feeds')").fetchone()[0]
    for u in users[:500]:  # (d) answers what (b) answers, wherever a row is served
        floor = admin.execute(FLOOR_SQL, {"user": u, "at": AT, "limit": LIMIT}).fetchall()
        if floor and floor != admin.execute(FEED_SQL, (u, AT, LIMIT)).fetchall():
            raise SystemExit(f"(d) and ootd.feed disagree for user {u}")
    return {
        "seconds": report.seconds,
        "ms_per_user": 1000.0 * report.seconds / len(users),
        "served": served,
        "bytes_per_user": size / len(users),
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


def agreement(
    pipeline: SeedStylePipeline, feed_conn: psycopg.Connection, admin: psycopg.Connection, check: list[int]
) -> tuple[int, int, str]:
    """(identical feeds, users checked, neighbour_pools on/off): the pipeline against ootd.feed for each user;
    prints what the users cover and the first difference."""
    forget_feeds(admin)
    expected = [feed_conn.execute(FEED_SQL, (u, AT, LIMIT)).fetchall() for u in check]
    got = [pipeline.feed(u, AT) for u in check]
    same = [same_feed(g, e) for g, e in zip(got, expected)]
    vetoes = admin.execute(
        "SELECT count(*) FROM ootd.users WHERE id = ANY (%s) "
        "AND (style_rules ? 'disliked_categories' OR style_rules ? 'disliked_colors')",
        (check,),
    ).fetchone()[0]
    relaxed = sum(1 for e in expected if e and e[0][9])
    mixed = sum(1 for e in expected if len({r[5] for r in e}) > 1)
    covered = f"{vetoes} with vetoes, {relaxed} relaxed by the cascade, {mixed} with both dayparts"
    try:  # where the served items came from (ootd.feed_explain's drawn_from, since migration 0013)
        led, items = admin.execute(
            "SELECT count(*) FILTER (WHERE e.rank = 1 AND e.drawn_from <> e.cluster_id), "
            "count(*) FILTER (WHERE e.drawn_from <> e.cluster_id) "
            "FROM unnest(%s::bigint[]) u CROSS JOIN LATERAL ootd.feed_explain(u, %s, %s) e WHERE e.rank <= %s",
            (check, AT, LIMIT, LIMIT),
        ).fetchone()
        covered += f", {led} led by a neighbour pool's outfit ({items} such outfits served)"
    except psycopg.Error:
        pass
    print(
        f"pipeline vs ootd.feed (neighbour_pools {'on' if pipeline.neighbours else 'off'}) on {len(check):,} users "
        f"({covered}): {sum(same):,} identical feeds (items, order, headline, cluster, relaxed rules; "
        "scores within 1e-5)",
        flush=True,
    )
    for u, g, e, ok in zip(check, got, expected, same):
        if not ok:
            print(f"    user {u} differs:\n      ootd.feed {e}\n      pipeline  {g}", flush=True)
            break
    return sum(same), len(check), "on" if pipeline.neighbours else "off"


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
        has_floor = admin.execute("SELECT to_regprocedure('ootd._served(bigint, timestamptz, integer)') IS NOT NULL")
        floor_conn = stack.enter_context(psycopg.connect(url, autocommit=True)) if has_floor.fetchone()[0] else None
        if floor_conn is not None:
            floor_cur = floor_conn.cursor()
            pids["floor"] = floor_conn.info.backend_pid

        pipeline = redis_pid = None
        redis_version = ""
        if not skip_reason:
            import redis

            rproc, rkwargs = stack.enter_context(redis_server(redis_exe, args.redis_unix_socket))
            rds = redis.Redis(**rkwargs)
            stack.callback(rds.close)
            layout = redis_layout(admin.execute(POOLS_SQL).fetchall())
            rds.mset(layout)
            redis_version = rds.info("server")["redis_version"]
            redis_pid = rproc.pid
            pipe_conn = stack.enter_context(psycopg.connect(url, autocommit=True))
            pipeline = SeedStylePipeline(pipe_conn, rds, orjson.loads)
            pids["pipe"] = pipe_conn.info.backend_pid
            sizes: dict[str, int] = {}  # JSON + float4 of each pool-daypart and each bucket
            for key, value in layout.items():
                base = key.removesuffix(EMB_SUFFIX)
                sizes[base] = sizes.get(base, 0) + len(value)
            pool_sizes = [v for k, v in sizes.items() if k.startswith("ootd:pool:")]
            bucket_sizes = [v for k, v in sizes.items() if k.startswith("ootd:pools:")]
            print(
                f"redis {redis_version} on {'a Unix socket' if args.redis_unix_socket else 'a loopback TCP port'}: "
                f"{len(pool_sizes)} pool x daypart entries ({statistics.mean(pool_sizes) / 1024:.1f} KiB each) and "
                f"{len(bucket_sizes)} (date, weather, daypart) buckets ({statistics.mean(bucket_sizes) / 1024:.1f} KiB "
                f"each), JSON + float4 embeddings; neighbour_pools {'on' if pipeline.neighbours else 'off'}",
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

        def run_floor(part: list[int]) -> Callable[[], None]:
            def body() -> None:
                for u in part:
                    floor_cur.execute(FLOOR_SQL, {"user": u, "at": AT, "limit": LIMIT}, prepare=True)
                    floor_cur.fetchall()

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
            if floor_conn is not None:
                floor_cur.execute(FLOOR_SQL, {"user": u, "at": AT, "limit": LIMIT}, prepare=True)
                floor_cur.fetchall()

        # correctness: the pipeline must serve what ootd.feed serves (same items, order, headline),
        # with the weights in force and, when the schema has the switch, with neighbour_pools flipped
        agree = agree_flipped = None
        if pipeline:
            check = users[:1000]
            agree = agreement(pipeline, feed_conn, admin, check)
            has_switch = admin.execute("SELECT to_jsonb(w) ? 'neighbour_pools' FROM ootd.scoring_weights w").fetchone()[
                0
            ]
            if has_switch:
                admin.execute("UPDATE ootd.scoring_weights SET neighbour_pools = NOT neighbour_pools")
                try:
                    pipeline.load_weights()
                    agree_flipped = agreement(pipeline, feed_conn, admin, check)
                finally:
                    admin.execute("UPDATE ootd.scoring_weights SET neighbour_pools = NOT neighbour_pools")
                    pipeline.load_weights()

        # The agreement check changed the weights (every served row stale): write them again, as the nightly
        # did, for the local dates at AT and DAY; the rounds then read them, as a day's first requests do.
        ahead = served_ahead(url, admin, users)
        print(
            f"served feeds written ahead in {ahead['seconds']:.1f} s ({ahead['ms_per_user']:.2f} ms per user, 2 sessions); "
            f"{ahead['served']:,} of {len(users):,} first requests at {AT:%H:%M} UTC read one, the rest are ranked "
            f"live (their local date or zone has no row); {ahead['bytes_per_user']:,.0f} bytes per user",
            flush=True,
        )

        # Each round serves every user once (each user's first request: the memo, if any, is emptied
        # first) and calls SELECT 1 as many times, in --slices slices; the three workloads take turns
        # slice by slice, in an order that alternates, so a neighbour's load on a shared machine
        # falls on all three alike.
        names = {
            "one": "(a) SELECT 1",
            "feed": "(b) ootd.feed, first request",
            "pipe": "(c) seed-style pipeline",
            "floor": "(d) the served row, plain",
        }
        keys = ["one", "feed"] + (["pipe"] if pipeline else []) + (["floor"] if floor_conn is not None else [])
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
                    elif key == "floor":
                        tallies[key].run(len(part), run_floor(part))
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
                + (f", (b)/(c) {got['feed']['rate'] / got['pipe']['rate']:.2f}" if pipeline else "")
                + (f", (d)/(a) {got['floor']['rate'] / got['one']['rate']:.2f}" if "floor" in got else ""),
                flush=True,
            )

        if not args.no_diagnostics:
            diagnostics(url, users, pgss, pipeline is not None)
        stack.close()  # stops redis and postgres before the summary

    summary(
        args,
        results,
        server_version,
        redis_version,
        memo,
        [a for a in (agree, agree_flipped) if a],
        skip_reason,
        time.perf_counter() - begun,
    )


def summary(
    args: argparse.Namespace,
    results: list[dict[str, dict]],
    server_version: str,
    redis_version: str,
    memo: bool,
    agree: list[tuple[int, int, str]],
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
    keys = [k for k in ("one", "feed", "pipe", "floor") if results and k in results[0]]
    for key in keys:
        print(
            f"{results[0][key]['name']:<32} {spread(col(key, 'rate')):>26} "
            f"{spread(col(key, 'backend_us'), '{:.0f}'):>20} {spread(col(key, 'client_us'), '{:.0f}'):>19}"
        )
    if "pipe" in keys:
        print(
            f"{'':<32} (c) per request: Postgres round trip {statistics.median(col('pipe', 'pg_us')):.0f} us, "
            f"redis MGET {statistics.median(col('pipe', 'redis_rt_us')):.0f} us, "
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
        print(
            "pipeline agrees with ootd.feed on "
            + "; ".join(f"{ok:,} of {n:,} users checked (neighbour_pools {switch})" for ok, n, switch in agree)
        )
    else:
        print(f"(b)/(c): not measured, {skip_reason}")
    if "floor" in keys:
        da = [r["floor"]["rate"] / r["one"]["rate"] for r in results]
        bd = [r["feed"]["rate"] / r["floor"]["rate"] for r in results]
        print(
            f"(d)/(a) served row plain / SELECT 1: median {statistics.median(da):.2f} (the floor of one index read "
            f"returning these rows); (b)/(d) ootd.feed / its own first query: median {statistics.median(bd):.2f}"
        )
    print("=" * 100)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
