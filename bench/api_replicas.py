"""Benchmark: the HTTP feed routed to a read replica vs the primary-only one, side by side in one run.

One embedded primary (durable defaults) and its streaming hot standby (`ootd db replica`'s kind), 10,000
seeded users with today's pools, and two real `ootd serve` (gunicorn, 2 workers x 4 threads) over the
same primary: one primary-only, one with DATABASE_READ_URLS = the replica.  One client (wrk -t1, one
keep-alive connection by default) asks for feeds round-robin over 2,000 users, alternating between the two
servers for --rounds rounds, so that a neighbour's load hits both alike; it reports each mode's median run
(p50, p99, req/s) and the medians of the per-round ratios.  The routed server's /metrics must show every
feed served by the replica, and neither server may answer a 5xx.

Caveat: on a 2-core machine the replica, the primary, both servers and the client share the same cores,
so a replica cannot add capacity here; the figures show what the routing costs per request (the round
trip is the same length, the replica's backend does the same work), not what a replica on its own
machine would add.
Usage: python -m bench.api_replicas [--seconds 5] [--rounds 5] [--connections 1]
Needs wrk (Debian/Ubuntu: apt-get install wrk).  DATABASE_URL set: it is the primary, and
DATABASE_READ_URLS must name its replica(s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from bench.api import feed_script, free_port, http, median_run, wait_until_serving, wrk
from bench.common import machine
from cli.main import migrate
from db import REPO_ROOT
from db.connect import connect
from db.server import EmbeddedServer, ReplicaServer

USERS = 10_000
FEED_USERS = 2_000


@contextmanager
def primary_and_replicas() -> Iterator[tuple[str, str, ReplicaServer | None]]:
    """(primary DSN, replica DSNs comma-separated, the embedded replica or None).

    DATABASE_URL and DATABASE_READ_URLS if set; else a fresh embedded server and its replica."""
    if os.environ.get("DATABASE_URL"):
        reads = os.environ.get("DATABASE_READ_URLS")
        if not reads:
            raise SystemExit("DATABASE_URL is set: DATABASE_READ_URLS must name its replica(s)")
        yield os.environ["DATABASE_URL"], reads, None
        return
    home = Path(tempfile.mkdtemp(prefix="ootd-bench-replicas-"))
    server = EmbeddedServer(home)
    replica = server.replica()
    try:
        url = server.ensure_running()
        yield url, server.start_replica().dsn(), replica
    finally:
        try:
            replica.stop("fast")
        finally:
            server.stop("fast")
            shutil.rmtree(home, ignore_errors=True)


def start_server(
    url: str, reads: str | None, secret: str, port: int, workers: int, threads: int, log: Path
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "DATABASE_READ_URLS")}
    env.update(DATABASE_URL=url, OOTD_API_SECRET=secret)
    if reads:
        env["DATABASE_READ_URLS"] = reads
    argv = ["serve", "--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return wait_until_serving(proc, port, log)


def scrape(base: str) -> tuple[dict[str, int], int]:
    """(feeds routed by backend, 5xx responses) from a server's /metrics."""
    text = http(base, "/metrics")[1].decode()
    routed = {
        m.group(1): int(float(m.group(2)))
        for m in re.finditer(r'^ootd_feed_routed_total\{backend="([^"]+)"\} (\S+)$', text, re.MULTILINE)
    }
    errors = sum(
        int(float(m.group(1)))
        for m in re.finditer(r'^ootd_http_requests_total\{[^}]*status="5[0-9][0-9]"[^}]*\} (\S+)$', text, re.MULTILINE)
    )
    return routed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating primary-only / replica-routed runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=1, help="wrk connections (1: one client, one at a time)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench-api-replicas needs wrk: apt-get install wrk (or brew install wrk)")

    from api.auth import issue_token

    day = datetime.now(timezone.utc).date()
    work = Path(tempfile.mkdtemp(prefix="ootd-bench-api-replicas-"))
    servers: dict[str, subprocess.Popen] = {}
    with primary_and_replicas() as (url, reads, replica):
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=day, llm="offline", serve_ahead=True))
        if replica is not None:
            replica.wait_for_replay(timeout=300)
        secret = secrets.token_urlsafe(48)
        bases = {}
        try:
            for mode, read_urls in (("primary-only", None), ("replica-routed", reads)):
                port = free_port()
                bases[mode] = f"http://127.0.0.1:{port}"
                servers[mode] = start_server(
                    url, read_urls, secret, port, args.workers, args.threads, work / f"{mode}.log"
                )
            routed_base = bases["replica-routed"]
            ready = json.loads(http(routed_base, "/readyz")[1])
            if [r["state"] for r in ready["replicas"]] != ["up"] * len(ready["replicas"]):
                raise SystemExit(f"a replica is not up: {ready['replicas']}")

            feed_users = [(i * 7919) % USERS + 1 for i in range(FEED_USERS)]
            tokens = [issue_token(u, secret, ttl_s=3600) for u in feed_users]
            script = work / "feed.lua"
            script.write_text(feed_script([f"/v1/users/{u}/feed" for u in feed_users], tokens))
            for base in bases.values():  # warm-up: every user's first feed, every pooled connection
                wrk(base, "/", 3, max(args.connections, 4), script)
            before = {mode: scrape(base) for mode, base in bases.items()}
            runs: dict[str, list[dict]] = {mode: [] for mode in bases}
            for _ in range(args.rounds):
                for mode, base in bases.items():
                    runs[mode].append(wrk(base, "/", args.seconds, args.connections, script))
            after = {mode: scrape(base) for mode, base in bases.items()}
        finally:
            for proc in servers.values():
                proc.send_signal(signal.SIGTERM)
            for proc in servers.values():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    medians = {mode: median_run(r) for mode, r in runs.items()}
    p50_ratio = statistics.median(
        r["p50_ms"] / p["p50_ms"] for p, r in zip(runs["primary-only"], runs["replica-routed"])
    )
    p99_ratio = statistics.median(
        r["p99_ms"] / p["p99_ms"] for p, r in zip(runs["primary-only"], runs["replica-routed"])
    )
    rps_ratio = statistics.median(r["rps"] / p["rps"] for p, r in zip(runs["primary-only"], runs["replica-routed"]))
    routed = {
        backend: n - before["replica-routed"][0].get(backend, 0) for backend, n in after["replica-routed"][0].items()
    }
    errors_5xx = sum(errors for _, errors in after.values())
    non2xx = sum(r["non2xx"] for mode_runs in runs.values() for r in mode_runs)

    print(
        f"machine: {machine()}; servers: 2 x ootd serve --workers {args.workers} --threads {args.threads} "
        f"(gunicorn) over one primary; replica: streaming hot standby on the same machine; "
        f"{USERS:,} users, feeds round-robin over {FEED_USERS:,} users"
    )
    print(
        f"client: wrk -t1 -c{args.connections}, {args.rounds} rounds x {args.seconds:g} s per mode, the modes "
        f"alternating; per mode the run with the median req/s"
    )
    print(f"{'mode':<16} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for mode, run in medians.items():
        print(f"{mode:<16} {run['p50_ms']:8.2f} {run['p99_ms']:8.2f} {run['rps']:8,.0f}")
    print(
        f"replica-routed / primary-only (median of per-round ratios): p50 {p50_ratio:.2f}, p99 {p99_ratio:.2f}, "
        f"req/s {rps_ratio:.2f}"
    )
    print(
        "feeds served during the measured runs by the routed server (its /metrics): "
        + ", ".join(f"{backend} {n:,}" for backend, n in sorted(routed.items()))
    )
    print(f"non-2xx (wrk): {non2xx}; 5xx over the whole run (both servers' /metrics): {errors_5xx}")
    print(
        "caveat: 2 cores shared by the primary, the replica, both servers and the client: the replica adds no "
        "capacity here; the ratio is the routing's cost per request, not a replica's gain on its own machine"
    )
    shutil.rmtree(work, ignore_errors=True)
    if errors_5xx or non2xx or routed.get("primary", 0):
        raise SystemExit("FAILED: errors, or feeds the replica should have served went to the primary")


if __name__ == "__main__":
    main()
