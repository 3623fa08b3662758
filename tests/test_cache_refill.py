"""The pool cache comes back by itself after a crash emptied it (issue 25, item 7).

A running `ootd serve` refills it (its master checks every OOTD_CACHE_CHECK_S), and every command that
starts the embedded server says so on stderr and refills it (`ootd db url`, `ootd token`, ...).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest

from db import REPO_ROOT
from db.server import EmbeddedServer
from tests.conftest import run_cli
from tests.test_api_server import free_port


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An embedded server in its own home (it is crashed here), migrated, 300 users, today's pools."""
    home = tmp_path_factory.mktemp("refill") / "home"
    env = {"OOTD_HOME": str(home)}
    for args in (["migrate"], ["seed", "--users", "300"], ["nightly", "--llm", "offline"]):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr
    yield home
    EmbeddedServer(home).stop("immediate")


def cache(home) -> tuple[int, int]:
    """(pools, cached pools) of today."""
    with psycopg.connect(EmbeddedServer(home).dsn()) as conn:
        return conn.execute("SELECT pools, cached_pools FROM ootd.serving_status()").fetchone()


def crash(home) -> None:
    """Stop the server as a crash would (no shutdown checkpoint): recovery empties the UNLOGGED cache."""
    server = EmbeddedServer(home)
    assert server.stop("immediate")
    server.restart()
    pools, cached = cache(home)
    assert pools > 0 and cached == 0
    assert server.stop("immediate")  # the next command finds it stopped


@pytest.mark.parametrize("args", [["db", "url"], ["token", "1"]], ids=["db-url", "token"])
def test_a_command_that_starts_a_crashed_server_says_so_and_refills_the_cache(home, args):
    crash(home)
    result = run_cli(*args, env={"OOTD_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert f"ootd: started the embedded PostgreSQL in {home}" in result.stderr
    assert "ootd: the pool cache was empty after a crash: restored" in result.stderr
    pools, cached = cache(home)
    assert cached == pools > 0


def readyz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
        return json.loads(answer.read())


def test_a_running_server_refills_the_cache_after_a_backend_is_killed(home, tmp_path):
    """A backend killed: the postmaster restarts itself, recovery empties the cache; `ootd serve` notices."""
    server = EmbeddedServer(home)
    server.ensure_running()
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(OOTD_HOME=str(home), OOTD_CACHE_CHECK_S="0.3", HOME=str(tmp_path))
    serve = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "1"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = readyz(port)
                break
            except OSError:
                log.seek(0)
                assert serve.poll() is None and time.monotonic() < deadline, log.read()
                time.sleep(0.1)
        assert ready["fallback_pools"] == 0 and ready["pools"] > 0

        victim = psycopg.connect(server.dsn(), autocommit=True)
        os.kill(victim.info.backend_pid, signal.SIGKILL)
        victim.close()
        deadline = time.monotonic() + 60
        while True:  # bounded: recovery, then the next check (0.3 s)
            time.sleep(0.3)
            log.seek(0)
            if "the pool cache was empty after a crash: restored" in log.read():
                break
            assert serve.poll() is None and time.monotonic() < deadline, log.read()
        for _ in range(100):  # the API's pooled connection was lost in the restart too: it reconnects
            try:
                ready = readyz(port)
                break
            except OSError:
                time.sleep(0.1)
        assert ready["fallback_pools"] == 0 and ready["cached_pools"] == ready["pools"] > 0
        assert cache(home)[1] == ready["pools"]
    finally:
        serve.terminate()
        serve.wait(30)
        log.close()
