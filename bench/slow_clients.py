"""Slow clients against `ootd serve` (2 workers x 4 threads): /healthz and a feed while N connections
each send one header line every 2 s and never finish their request heads (slowloris).

Two servers side by side on the same database: `stock`, gunicorn's gthread worker (a thread per
connection from its first byte: what `ootd serve` ran before issue 25), and `ootd`, the worker of
api/server.py (heads read in the event loop, a thread only for a whole head).  For each, with no slow
client, then 8, then 50: sequential requests for a few seconds, each with a 1 s timeout; latency
percentiles and timeouts.  Goal: with 50 slow clients, /healthz and feeds within 100 ms.

    python -m bench.slow_clients [--users 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from bench.common import bench_database, machine
from db import REPO_ROOT

#: Runs `ootd serve`, the stock variant with gunicorn's own gthread worker (JSON errors kept).
SERVE = """
import sys
import api.server as server
from gunicorn.workers.gthread import ThreadWorker
if sys.argv[1] == "stock":
    class Stock(server._JsonErrors, ThreadWorker):
        pass
    server.JsonErrorThreadWorker = Stock
from cli.main import main
sys.exit(main(["serve", "--port", sys.argv[2], "--workers", "2", "--threads", "4"]))
"""
PERIOD_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(variant: str, url: str, home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "OOTD_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, variant, str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return proc, base
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{variant} server did not start:\n{log.read_text()}")
            time.sleep(0.1)


class Slow:
    """`n` connections sending a header line every PERIOD_S seconds, heads never finished."""

    def __init__(self, base: str, n: int):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.socks = []
        for _ in range(n):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.socks.append(sock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self) -> None:
        line = 0
        while not self.stop.wait(PERIOD_S):
            line += 1
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow-%d: x\r\n" % line)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def timed(url: str, headers: dict[str, str]) -> float | None:
    """Seconds to a whole 200 answer, or None (timeout after 1 s, error)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=1) as answer:
            answer.read()
            if answer.status != 200:
                return None
    except (OSError, urllib.error.URLError):
        return None
    return time.perf_counter() - started


def measure(base: str, token: str, user: int, slow: int, seconds: float) -> dict[str, dict]:
    clients = Slow(base, slow) if slow else None
    try:
        if clients:
            time.sleep(0.5)  # every slow connection has sent its request line
        samples: dict[str, list[float | None]] = {"healthz": [], "feed": []}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples["healthz"].append(timed(base + "/healthz", {}))
            samples["feed"].append(timed(f"{base}/v1/users/{user}/feed", {"Authorization": f"Bearer {token}"}))
    finally:
        if clients:
            clients.close()
    result = {}
    for path, values in samples.items():
        ok = sorted(v for v in values if v is not None)
        result[path] = {
            "n": len(values),
            "timeouts": len(values) - len(ok),
            "p50_ms": statistics.median(ok) * 1000 if ok else float("nan"),
            "p99_ms": ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000 if ok else float("nan"),
            "max_ms": ok[-1] * 1000 if ok else float("nan"),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row (default: 5)")
    args = parser.parse_args()

    from api.auth import issue_token
    from batch.nightly import NightlyConfig, run_nightly
    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import connect

    home = Path(tempfile.mkdtemp(prefix="ootd-bench-slow-"))
    os.environ["OOTD_API_SECRET"] = "bench-secret-" + "x" * 32
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, args.users, 42)
        run_nightly(url, NightlyConfig(day=datetime.now(timezone.utc).date(), llm="offline"))
        token = issue_token(7, os.environ["OOTD_API_SECRET"])
        rows = []
        for variant in ("stock", "ootd"):
            proc, base = start(variant, url, home, home / f"{variant}.log")
            try:
                for slow in (0, 8, 50):
                    result = measure(base, token, 7, slow, args.seconds)
                    rows.append((variant, slow, result))
                    print(f"{variant} {slow} slow clients: {result}", file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                proc.wait(30)

    print(f"\nslow clients (one header line every {PERIOD_S:g} s), 2 workers x 4 threads, {machine()}")
    print("| server | slow clients | path | requests | timeouts (1 s) | p50 ms | p99 ms | max ms |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for variant, slow, result in rows:
        for path, r in result.items():
            print(
                f"| {variant} | {slow} | {path} | {r['n']} | {r['timeouts']} | {r['p50_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['max_ms']:.1f} |"
            )
    by = {(v, s, p): r for v, s, result in rows for p, r in result.items()}
    print("\nootd vs stock, requests answered in the same time (ratio):")
    for slow in (0, 8, 50):
        for path in ("healthz", "feed"):
            stock = by[("stock", slow, path)]
            ours = by[("ootd", slow, path)]
            answered = (ours["n"] - ours["timeouts"]) / max(1, stock["n"] - stock["timeouts"])
            print(
                f"  {slow:>2} slow, {path}: {answered:.1f}x answered; p99 {ours['p99_ms']:.1f} ms vs {stock['p99_ms']:.1f} ms"
            )


if __name__ == "__main__":
    main()
