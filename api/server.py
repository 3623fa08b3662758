"""`ootd serve`: the API under gunicorn (never the Flask development server).

This process becomes gunicorn's master: it resolves the database URL and the
token secret once, checks that it can act as `ootd_api`, then forks the
workers, each of which builds its own app and connection pool (nothing
database-related crosses a fork).  SIGTERM or SIGINT stops accepting
connections, lets in-flight requests finish (up to `graceful_timeout`) and
exits 0; SIGHUP reloads the workers.

Metrics: `PROMETHEUS_MULTIPROC_DIR` is pointed at a fresh temporary directory
before any worker imports prometheus_client, a dead worker's files are marked
by `child_exit`, and the directory is removed when the master exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 4
    graceful_timeout: int = 15
    access_log: bool = False


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    """After the last request: close the worker's pool (clean disconnects, no EOF noise in the server log)."""
    app = getattr(worker, "wsgi", None)
    state = getattr(app, "extensions", {}).get("ootd")
    if state is not None:
        state.db.close()


class _Gunicorn(BaseApplication):
    def __init__(self, config: ServeConfig, database_url: str, secret: str):
        self.config = config
        self.database_url = database_url
        self.secret = secret
        super().__init__(prog="ootd serve")

    def load_config(self) -> None:
        c = self.config
        settings = {
            "bind": [f"{c.host}:{c.port}"],
            "workers": c.workers,
            "worker_class": "gthread" if c.threads > 1 else "sync",
            "threads": c.threads,
            "graceful_timeout": c.graceful_timeout,
            "timeout": 30,
            "keepalive": 5,
            # Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new
            # connections over the workers.  With one shared socket, whichever worker wakes
            # first accepts: a few keep-alive clients could all land on one worker and leave
            # the other idle (bench/api_ceiling.py saw 1 run in 3 with every connection on one
            # worker, at a third of the throughput).
            "reuse_port": True,
            "accesslog": "-" if c.access_log else None,
            "errorlog": "-",
            "proc_name": "ootd-api",
            "child_exit": _child_exit,
            "worker_exit": _worker_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from api.app import create_app

        return create_app(self.database_url, self.secret, pool_min=1, pool_max=self.config.threads)


class PortInUse(ValueError):
    """The address `ootd serve` was asked to listen on is taken."""


def check_port(host: str, port: int) -> None:
    """PortInUse if something listens on host:port already.

    The workers' SO_REUSEPORT sockets would otherwise share the port silently with
    another server of the same user (say, an older `ootd serve`): a plain bind
    conflicts with any listener, so it is the check.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections in TIME_WAIT are fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                            f"(another server? try --port)") from None


def serve(config: ServeConfig, database_url: str | None = None) -> None:
    """Run gunicorn in this process until SIGTERM/SIGINT (then exit 0)."""
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")
    from api.auth import load_secret
    from api.connector import check
    from db.connect import database_url as default_url

    url = database_url or default_url()
    secret = load_secret(create=True)
    check(url)  # fail now, with the SQLSTATE, rather than in every worker
    check_port(config.host, config.port)
    metrics_dir = tempfile.mkdtemp(prefix="ootd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    master = os.getpid()
    try:
        _Gunicorn(config, url, secret).run()
    finally:
        # A worker's sys.exit unwinds through these frames too (it was forked from here):
        # only the master may remove the directory the other workers still write to.
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
