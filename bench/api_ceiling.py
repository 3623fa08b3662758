"""Benchmark: what the database round trip costs a feed request under gunicorn (issue 6's ratio, taken apart).

`make bench-api` compares the feed with /healthz.  This runs the same app under the same
gunicorn settings as `ootd serve` (2 workers x 4 threads) in three variants of the feed
route, each against /healthz at full speed (wrk -t1 -c8, alternating, --rounds rounds):
  real     the route as shipped: ootd.feed through the pool
  canned   the route with Database.feed returning rows fetched once at start-up: routing,
           token check, validation and JSON, no database
  select1  canned rows after a `SELECT 1` through the same pool: the cheapest database call
It also reports CPU per request from /proc: gunicorn workers, PostgreSQL processes, wrk.
The variants exist only here (the app is patched after create_app); api/ knows nothing of them.
Usage: python -m bench.api_ceiling [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.api import FEED_USERS, USERS, feed_script, free_port, wait_until_serving, wrk
from bench.common import bench_database, machine

VARIANTS = ("real", "canned", "select1")
_TICK = os.sysconf("SC_CLK_TCK")


def __getattr__(name: str):
    """`app` for gunicorn (bench.api_ceiling:app), built on first access in the worker."""
    if name != "app":
        raise AttributeError(name)
    from api.app import create_app

    app = create_app(os.environ["DATABASE_URL"], os.environ["OOTD_API_SECRET"], pool_min=4, pool_max=4)
    variant = os.environ["OOTD_CEILING_VARIANT"]
    if variant != "real":
        db = app.extensions["ootd"].db
        rows = db.feed(1, None, 3)

        class Canned:
            def feed(self, user_id, at, limit):
                if variant == "select1":
                    with db.pool.connection() as conn:
                        conn.execute("SELECT 1").fetchall()
                return rows

        app.extensions["ootd"].db = Canned()
    globals()["app"] = app
    return app


def cpu_seconds(kinds: dict[str, list[int]]) -> dict[str, float]:
    out = {}
    for kind, pids in kinds.items():
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / _TICK
            except OSError:
                pass
        out[kind] = total
    return out


def processes(master: int) -> dict[str, list[int]]:
    workers, backends = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            workers.append(int(entry))
        elif cmd.startswith(b"postgres:") or b"/postgres\0" in cmd:
            backends.append(int(entry))
    return {"workers": workers, "postgres": backends}


def measure(base: str, path: str, seconds: float, script: Path | None, master: int) -> dict:
    procs = processes(master)
    before, wrk_before = cpu_seconds(procs), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk(base, path, seconds, 8, script)
    after, wrk_after = cpu_seconds(procs), resource.getrusage(resource.RUSAGE_CHILDREN)
    n = result["requests"]
    result["cpu_us"] = {k: (after[k] - before[k]) / n * 1e6 for k in before}
    result["cpu_us"]["wrk"] = (
        ((wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)) / n * 1e6
    )
    return result


def serve(variant: str, url: str, secret: str, port: int, log: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=url,
        OOTD_API_SECRET=secret,
        OOTD_CEILING_VARIANT=variant,
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="ootd-ceiling-metrics-"),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "5",
            "--reuse-port",
            "-b",
            f"127.0.0.1:{port}",
            "bench.api_ceiling:app",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return wait_until_serving(proc, port, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench-api-ceiling needs wrk: apt-get install wrk (or brew install wrk)")

    from api.auth import issue_token
    from batch.nightly import NightlyConfig, run_nightly
    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import connect

    work = Path(tempfile.mkdtemp(prefix="ootd-bench-ceiling-"))
    report = []
    with bench_database() as url:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        run_nightly(url, NightlyConfig(day=datetime.now(timezone.utc).date(), llm="offline"))
        secret = secrets.token_urlsafe(48)
        users = [(i * 7919) % USERS + 1 for i in range(FEED_USERS)]
        script = work / "feed.lua"
        script.write_text(
            feed_script([f"/v1/users/{u}/feed" for u in users], [issue_token(u, secret, ttl_s=3600) for u in users])
        )
        for variant in VARIANTS:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = serve(variant, url, secret, port, work / f"{variant}.log")
            try:
                measure(base, "/", 3, script, server.pid)  # warm-up: every user's first feed of the day
                rounds = [
                    (
                        measure(base, "/healthz", args.seconds, None, server.pid),
                        measure(base, "/", args.seconds, script, server.pid),
                    )
                    for _ in range(args.rounds)
                ]
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
            report.append((variant, rounds))
    shutil.rmtree(work, ignore_errors=True)

    print(
        f"machine: {machine()}; gunicorn 2 workers x 4 threads (gthread); wrk -t1 -c8; "
        f"{args.rounds} x {args.seconds:g} s per endpoint and variant; CPU per request from /proc"
    )

    def cpu(r: dict) -> str:
        return " + ".join(f"{k} {v:.0f}" for k, v in r["cpu_us"].items()) + f" = {sum(r['cpu_us'].values()):.0f} us"

    for variant, rounds in report:
        ratios = [f["rps"] / h["rps"] for h, f in rounds]
        h, f = rounds[-1]
        print(
            f"  {variant:<8} feed/healthz {statistics.median(ratios):.2f} (rounds "
            f"{', '.join(f'{r:.2f}' for r in ratios)}); last round: healthz {h['rps']:,.0f}/s [{cpu(h)}], "
            f"feed {f['rps']:,.0f}/s [{cpu(f)}]"
        )


if __name__ == "__main__":
    main()
