"""Benchmark: the HTTP API under gunicorn (`ootd serve`, 2 workers), driven by wrk.

One run, one server, one load generator (wrk -t1), 10,000 seeded users with today's pools:
  1. /healthz and GET /v1/users/<id>/feed at full speed, alternating for --rounds rounds
     (feeds round-robin over 2,000 users, each with its own token, after a warm-up that
     serves every one of them once).  Goal: feed req/s / healthz req/s >= 0.5 (the
     median of the per-round ratios, so a neighbour's load on a shared machine hits both);
  2. the feed at about half its full speed (4 paced connections: a load the machine
     sustains) while a second wrk likes and unlikes outfits for 200 of those users, every
     request a write.  Goals: feed p99 <= 20 ms; zero 5xx.
The 5xx count comes from the server's own /metrics (every route, every status).
Usage: python -m bench.api [--seconds 5] [--rounds 3] [--workers 2] [--threads 4] [--connections 8]
Needs wrk (Debian/Ubuntu: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.common import bench_database, machine
from cli.main import migrate
from db import REPO_ROOT
from db.connect import connect

USERS = 10_000
FEED_USERS = 2_000
LIKERS = 200
RATIO_GOAL = 0.5
P99_GOAL_MS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.status, response.read()


def start_server(url: str, secret: str, port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(DATABASE_URL=url, OOTD_API_SECRET=secret)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return wait_until_serving(proc, port, log)


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path) -> subprocess.Popen:
    """`proc` once /healthz answers 200 on `port`; exits with the server's log if it never does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http(f"http://127.0.0.1:{port}", "/healthz")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def lua_table(values) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def feed_script(paths: list[str], tokens: list[str], delay_ms: float = 0.0) -> str:
    return f"""
local paths = {lua_table(paths)}
local tokens = {lua_table(tokens)}
local n = #paths
local i = 0
local requests = {{}}
function setup(thread) thread:set("offset", math.random(n)) end
function init(args)
  i = tonumber(offset) or 0
  -- built once: wrk shares the machine's cores with the server, so the feed's load
  -- generator should cost what /healthz's (a static request) costs, not a format per request
  for k = 1, n do
    requests[k] = wrk.format("GET", paths[k], {{["Authorization"] = "Bearer " .. tokens[k]}})
  end
end
function request()
  i = i + 1
  return requests[(i % n) + 1]
end
{"function delay() return %d end" % round(delay_ms) if delay_ms >= 1 else ""}
"""


def likes_script(users: list[int], outfits: list[int], tokens: list[str], delay_ms: float) -> str:
    """Each connection alternates like / unlike of one outfit per user: every request writes."""
    return f"""
local users = {lua_table(users)}
local outfits = {lua_table(outfits)}
local tokens = {lua_table(tokens)}
local n = #users
local i = 0
function request()
  i = i + 1
  local k = (math.floor(i / 2) % n) + 1
  local auth = "Bearer " .. tokens[k]
  if i % 2 == 1 then
    return wrk.format("POST", "/v1/users/" .. users[k] .. "/likes",
                      {{["Authorization"] = auth, ["Content-Type"] = "application/json"}},
                      '{{"outfit_id": ' .. outfits[k] .. '}}')
  end
  return wrk.format("DELETE", "/v1/users/" .. users[k] .. "/likes/" .. outfits[k], {{["Authorization"] = auth}})
end
function delay() return {round(delay_ms)} end
"""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(base: str, path: str, seconds: float, connections: int, script: Path | None = None, background: bool = False):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(base + path)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def parse_wrk(out: str) -> dict:
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "requests": int(re.search(r"([0-9]+) requests in", out).group(1)),
        "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)) else 0,
        "socket_errors": re.search(r"Socket errors:.*", out).group(0) if "Socket errors" in out else "none",
    }
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        result[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    return result


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its latencies belong to it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def status_counts(base: str) -> Counter:
    """ootd_http_requests_total from the server's /metrics, keyed by (method, route, status)."""
    _, body = http(base, "/metrics")
    counts: Counter = Counter()
    for line in body.decode().splitlines():
        m = re.match(
            r'ootd_http_requests_total\{method="([^"]+)",route="([^"]+)",status="([0-9]+)"\} ([0-9.e+]+)', line
        )
        if m:
            counts[(m.group(1), m.group(2), m.group(3))] = float(m.group(4))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating healthz / feed runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (1 = sync workers)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections in the full-speed phases")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench-api needs wrk: apt-get install wrk (or brew install wrk)")

    from api.auth import issue_token

    day = datetime.now(timezone.utc).date()
    work = Path(tempfile.mkdtemp(prefix="ootd-bench-api-"))
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=day, llm="offline", serve_ahead=True))
        secret = secrets.token_urlsafe(48)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(url, secret, port, args.workers, args.threads, work / "serve.log")
        try:
            feed_users = [(i * 7919) % USERS + 1 for i in range(FEED_USERS)]
            tokens = {u: issue_token(u, secret, ttl_s=3600) for u in feed_users}
            likers = feed_users[:LIKERS]
            outfits = [
                json.loads(http(base, f"/v1/users/{u}/feed", tokens[u])[1])["items"][-1]["outfit_id"] for u in likers
            ]
            feed = work / "feed.lua"
            feed.write_text(feed_script([f"/v1/users/{u}/feed" for u in feed_users], [tokens[u] for u in feed_users]))

            wrk(base, "/", 3, args.connections, feed)  # warm-up: every user's first feed of the day
            # Alternate the two, so that a neighbour's load on a shared machine hits both alike;
            # report the median of each and the median of the per-round ratios.
            rounds = []
            for _ in range(args.rounds):
                rounds.append(
                    (
                        wrk(base, "/healthz", args.seconds, args.connections),
                        wrk(base, "/", args.seconds, args.connections, feed),
                    )
                )
            healthz = median_run([h for h, _ in rounds])
            full = median_run([f for _, f in rounds])
            ratios = [f["rps"] / h["rps"] for h, f in rounds]

            # A sustainable load: about half the full speed (each of the connections waits between
            # requests), while likes are written.
            target = full["rps"] / 2
            paced = work / "feed_paced.lua"
            delay_ms = max(1.0, args.connections * 1000 / target - full["p50_ms"] / 2)
            paced.write_text(
                feed_script(
                    [f"/v1/users/{u}/feed" for u in feed_users], [tokens[u] for u in feed_users], delay_ms=delay_ms
                )
            )
            likes = work / "likes.lua"
            likes.write_text(likes_script(likers, outfits, [tokens[u] for u in likers], delay_ms=20))
            before = status_counts(base)
            mixed_seconds = 2 * args.seconds
            writer = wrk(base, "/", mixed_seconds + 1, 2, likes, background=True)
            time.sleep(0.5)
            mixed = wrk(base, "/", mixed_seconds, args.connections, paced)
            writer_out, _ = writer.communicate(timeout=mixed_seconds + 30)
            writes = parse_wrk(writer_out)
            after = status_counts(base)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    delta = after - before
    errors_5xx = int(sum(v for (m, r, s), v in (after).items() if s.startswith("5")))
    by_route = sorted(((m, r, s), int(v)) for (m, r, s), v in delta.items() if r != "/metrics")
    ratio = statistics.median(ratios)
    print(
        f"machine: {machine()}; server: ootd serve --workers {args.workers} --threads {args.threads} (gunicorn); "
        f"load: wrk -t1; {USERS:,} users, feeds round-robin over {FEED_USERS:,} users"
    )
    print(
        f"/healthz full speed (-c{args.connections}, median of {args.rounds} x {args.seconds:g} s): "
        f"{healthz['rps']:,.0f} req/s, p99 {healthz['p99_ms']:.2f} ms"
    )
    print(
        f"feed full speed (-c{args.connections}, median of {args.rounds} x {args.seconds:g} s):     "
        f"{full['rps']:,.0f} req/s, p50 {full['p50_ms']:.2f} ms, p99 {full['p99_ms']:.2f} ms, "
        f"non-2xx {sum(f['non2xx'] for _, f in rounds)}"
    )
    print(
        f"feed / healthz: {ratio:.2f} (median of rounds {', '.join(f'{r:.2f}' for r in ratios)}; goal >= {RATIO_GOAL})"
    )
    print(
        f"feed at {mixed['rps'] / full['rps']:.0%} of full speed (-c{args.connections}, each waiting "
        f"{round(delay_ms)} ms between requests) with likes written concurrently: {mixed['rps']:,.0f} req/s, "
        f"p50 {mixed['p50_ms']:.2f} ms, p90 {mixed['p90_ms']:.2f} ms, p99 {mixed['p99_ms']:.2f} ms "
        f"(goal <= {P99_GOAL_MS:.0f} ms), non-2xx {mixed['non2xx']}"
    )
    print(
        f"likes/unlikes written meanwhile (-c2): {writes['requests']:,} ({writes['rps']:,.0f}/s), "
        f"p99 {writes['p99_ms']:.2f} ms"
    )
    print(
        "server-side responses during that phase (from /metrics): "
        + ", ".join(f"{m} {r} {s}: {v:,}" for (m, r, s), v in by_route)
    )
    print(f"5xx responses over the whole run (server /metrics): {errors_5xx}")
    ok = ratio >= RATIO_GOAL and mixed["p99_ms"] <= P99_GOAL_MS and errors_5xx == 0
    print("goals:", "met" if ok else "NOT met")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
