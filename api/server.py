"""`ootd serve`: the API under gunicorn (never the Flask development server).

This process becomes gunicorn's master: it resolves the database URL and the
token secret once, checks that it can act as `ootd_api`, then forks the
workers, each of which builds its own app and connection pool (nothing
database-related crosses a fork).  SIGTERM or SIGINT stops accepting
connections, lets in-flight requests finish (up to `graceful_timeout`) and
exits 0; SIGHUP reloads the workers.

Errors gunicorn answers itself, before the app sees the request (a request
line, header field or header count past the limits below, malformed HTTP),
are written as the API's JSON error body by the worker classes here instead
of gunicorn's HTML page; the status is gunicorn's (414, 431, 400, ...).

Metrics: `PROMETHEUS_MULTIPROC_DIR` is pointed at a fresh temporary directory
before any worker imports prometheus_client, a dead worker's files are marked
by `child_exit`, and the directory is removed when the master exits.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from api.errors import error_body

#: gunicorn's limits on what it reads before the app (its defaults, stated here because the README documents them).
LIMIT_REQUEST_LINE = 4094  # bytes: method, path, query string and version; longer: 414
LIMIT_REQUEST_FIELDS = 100  # header fields; more: 431
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes per header field (name and value); longer: 431


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
        state.close()


#: How gunicorn's own errors are answered: (exception, status, reason), first match wins.  gunicorn
#: 27 gives the same statuses (workers/base.py, handle_error); only the body differs.
_SERVER_ERRORS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str], ...] = (
    ((http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName), 500, "Internal Server Error"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error"),
    (http_errors.LimitRequestLine, 414, "URI Too Long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented"),
    ((http_errors.ForbiddenProxyRequest, ssl.SSLError), 403, "Forbidden"),
    (http_errors.ParseException, 400, "Bad Request"),  # every other malformed request
)
_MAX_MESSAGE = 200  # gunicorn's messages quote the offending input


def _server_error(exc: BaseException, cfg: Any) -> tuple[int, str, str, str]:
    """(status, reason, code, message) for an exception gunicorn's worker caught."""
    status, reason = next(
        ((s, r) for kinds, s, r in _SERVER_ERRORS if isinstance(exc, kinds)), (500, "Internal Server Error")
    )
    if status >= 500:
        return status, reason, "internal", "internal error"
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
    if status == 414:
        message = f"request line longer than {cfg.limit_request_line} bytes"
    elif status == 431:
        message = (
            f"request headers too large: at most {cfg.limit_request_fields} header fields "
            f"of at most {cfg.limit_request_field_size} bytes each"
        )
    else:
        message = str(exc) or reason
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
    return status, reason, code, message


class _JsonErrors:
    """Replaces gunicorn's `Worker.handle_error`, which writes an HTML page (util.write_error), with the
    API's `{"error": {"code", "message"}}` body, keeping its statuses, logging and access log line."""

    cfg: Any
    log: Any

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        started = datetime.now()
        addr = addr or ("", -1)  # unix socket
        status, reason, code, message = _server_error(exc, self.cfg)
        if status < 500:
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        else:
            self.log.exception("Error handling request %s %s", getattr(req, "method", ""), getattr(req, "uri", ""))
        body = error_body(code, message).encode()
        if req is None and isinstance(exc, (http_errors.InvalidHeader, http_errors.InvalidHeaderName)):
            req = getattr(exc, "req", None)  # for the access log, as gunicorn does
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            resp = Response(req, client, self.cfg)
            resp.status, resp.response_length = f"{status} {reason}", len(body)
            resp.sent = len(body)  # what the access log prints (gunicorn's own pages log 0)
            self.log.access(resp, req, environ, datetime.now() - started)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:  # the client is gone
            self.log.debug("Failed to send error message.")


class JsonErrorThreadWorker(_JsonErrors, ThreadWorker):
    """gunicorn's gthread worker, errors as JSON."""


class JsonErrorSyncWorker(_JsonErrors, SyncWorker):
    """gunicorn's sync worker, errors as JSON."""


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
            "worker_class": JsonErrorThreadWorker if c.threads > 1 else JsonErrorSyncWorker,
            "threads": c.threads,
            "graceful_timeout": c.graceful_timeout,
            "timeout": 30,
            "keepalive": 5,
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
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
            raise PortInUse(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server? try --port)"
            ) from None


def serve(config: ServeConfig, database_url: str | None = None) -> None:
    """Run gunicorn in this process until SIGTERM/SIGINT (then exit 0)."""
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")
    from api.auth import load_secret
    from api.connector import check
    from db.connect import database_url as default_url

    url = database_url or default_url()
    secret = load_secret(create=True)
    check(url)  # fail now, with the SQLSTATE, rather than in every worker; a replica that is down is no reason
    check_port(config.host, config.port)
    metrics_dir = tempfile.mkdtemp(prefix="ootd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    master = os.getpid()
    try:
        from api.replicas import settings_from_env  # imports prometheus_client: only now that its directory is set

        settings_from_env()  # a malformed OOTD_REPLICA_* fails here (ValueError), not in every worker
        _Gunicorn(config, url, secret).run()
    finally:
        # A worker's sys.exit unwinds through these frames too (it was forked from here):
        # only the master may remove the directory the other workers still write to.
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
