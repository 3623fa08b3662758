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

Slow clients: a worker reads each request head (request line and headers) in its event loop, without
blocking, and hands the request to a thread only once the head is whole; a head not whole within
`HEAD_TIMEOUT_S` is answered 408 and closed.  A client trickling a header line every few seconds holds
a socket, never a thread (gunicorn's gthread worker gives a thread to a connection from its first byte:
8 such clients stalled 2 workers x 4 threads).

The pool cache: a thread of the master calls ootd.rehydrate_cache every `OOTD_CACHE_CHECK_S` seconds
(default 5) on a connection of DATABASE_URL's own user (not ootd_api), so a cache that crash recovery
emptied (a backend killed: the postmaster restarts itself) is refilled without anyone running a command.

No control socket (gunicornc): gunicorn's default is one path per user, shared by every instance.

Metrics: `PROMETHEUS_MULTIPROC_DIR` is pointed at a fresh temporary directory
before any worker imports prometheus_client, a dead worker's files are marked
by `child_exit`, and the directory is removed when the master exits.
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import TConn, ThreadWorker
from gunicorn.workers.sync import SyncWorker

from api.errors import error_body

#: gunicorn's limits on what it reads before the app (its defaults, stated here because the README documents them).
LIMIT_REQUEST_LINE = 4094  # bytes: method, path, query string and version; longer: 414
LIMIT_REQUEST_FIELDS = 100  # header fields; more: 431
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes per header field (name and value); longer: 431
#: Seconds a client has to send a whole request head (request line and headers), from its connection or,
#: kept alive, from its next request's first byte; later: 408, closed.
HEAD_TIMEOUT_S = 10.0
#: The pool-cache check's default period (OOTD_CACHE_CHECK_S).
CACHE_CHECK_S = 5.0


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
    """gunicorn's gthread worker, errors as JSON, request heads read in the event loop (slow clients).

    A new connection, or a kept-alive one that turns readable, is read without blocking by the worker's
    loop until its buffer holds a whole head ("\\r\\n\\r\\n"), or more bytes than a legal head has
    (then the parser's limit errors answer it at once); only then does a thread parse it, from that
    buffer.  The body is read by the thread, as before (at most 4 KiB is accepted, api/app.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heading: deque[Any] = deque()  # connections whose head is being read, oldest deadline first
        cfg = self.cfg
        self.max_head = cfg.limit_request_line + 2 + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 2

    def accept(self, listener: socket.socket) -> None:
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, addr, listener.getsockname())  # non-blocking
        self._read_head(conn)

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection's next request begins: read its head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn)

    def _read_head(self, conn: Any) -> None:
        conn.ootd_head = b""
        conn.ootd_deadline = time.monotonic() + HEAD_TIMEOUT_S
        if self._on_head_readable(conn, conn.sock, registered=False):
            self.heading.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _on_head_readable(self, conn: Any, client: socket.socket, registered: bool = True) -> bool:
        """Read what is there; dispatch a whole head, close at EOF.  True: keep waiting."""
        try:
            data = client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if data:
            conn.ootd_head += data
            if b"\r\n\r\n" not in conn.ootd_head and len(conn.ootd_head) <= self.max_head:
                return True
        if registered:
            self._unwatch(conn)
        if not data:  # the client went away (or reset) before a whole head
            self.nr_conns -= 1
            conn.close()
            return False
        conn.data_ready = True
        self.enqueue_req(conn)
        return False

    def _unwatch(self, conn: Any) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            self.heading.remove(conn)
        except ValueError:
            pass

    def murder_pending(self) -> None:
        """Also: close heads past their deadline (408 when part of one came), and idle ones when stopping."""
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.heading):
            if conn.ootd_deadline > now and (self.alive or conn.ootd_head):
                continue
            self._unwatch(conn)
            self.nr_conns -= 1
            if conn.ootd_head:
                self.log.warning("Request head not received within %g s from ip=%s", HEAD_TIMEOUT_S, conn.client[0])
                body = error_body("request_timeout", f"request head not received within {HEAD_TIMEOUT_S:g} s")
                head = (
                    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                try:
                    conn.sock.send((head + body).encode())
                except OSError:
                    pass
            conn.close()

    def handle(self, conn: Any) -> Any:
        """In a thread: the parser reads the buffered head first, then the socket (blocking) for the body."""
        head = getattr(conn, "ootd_head", b"")
        if head:
            conn.ootd_head = b""
            try:
                conn.sock.setblocking(True)
                conn.init()
            except Exception as exc:
                self.handle_error(None, conn.sock, conn.client, exc)
                return False
            conn.parser.unreader.unread(head)
        return super().handle(conn)


class JsonErrorSyncWorker(_JsonErrors, SyncWorker):
    """gunicorn's sync worker, errors as JSON."""


class CacheKeeper(threading.Thread):
    """Refills the UNLOGGED pool cache whenever it lacks pools the durable tables hold (crash recovery
    empties it), every `interval` seconds, as DATABASE_URL's user: ootd.rehydrate_cache writes nothing
    when nothing is missing.  Runs in the master (a daemon thread, started once the workers are forked)."""

    def __init__(self, url: str, interval: float, log: Any):
        super().__init__(name="ootd-cache-keeper", daemon=True)
        self.url, self.interval, self.log = url, interval, log
        self.stopped = threading.Event()
        self._last_problem = ""

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.check()

    def check(self) -> int:
        """One refill; returns the rows restored.  A failure is logged once (until it changes) and retried."""
        from db.connect import DatabaseError, connect, one

        try:
            with connect(self.url, autocommit=True) as conn:
                restored = one(conn, "rehydrate_cache")["restored"]
        except DatabaseError as exc:
            problem = f"{exc.sqlstate}: {exc}"
            if problem != self._last_problem:  # e.g. the server restarting: said once, not every period
                self.log.warning("pool cache check failed (retrying every %g s): %s", self.interval, exc)
            self._last_problem = problem
            return 0
        self._last_problem = ""
        if restored:
            self.log.warning("the pool cache was empty after a crash: restored %d rows from durable storage", restored)
        return restored


def cache_check_interval() -> float:
    """OOTD_CACHE_CHECK_S (seconds, > 0; default CACHE_CHECK_S); ValueError when malformed."""
    text = os.environ.get("OOTD_CACHE_CHECK_S", "")
    try:
        value = float(text) if text else CACHE_CHECK_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"OOTD_CACHE_CHECK_S must be a number of seconds > 0, got {text!r}")
    return value


class _Arbiter(Arbiter):
    """gunicorn's master, saying where it listens (with reuse_port the workers bind, and gunicorn's own line
    names no address) and starting the cache keeper after the first workers are forked."""

    def start(self) -> None:
        info = self.log.info

        def listening(msg: str, *args: Any, **kwargs: Any) -> None:
            if msg.startswith("Listening at:") and args and not args[0]:
                args = (",".join(f"http://{address}" for address in self.cfg.bind), *args[1:])
            info(msg, *args, **kwargs)

        self.log.info = listening
        try:
            super().start()
        finally:
            del self.log.info

    def _start_control_server(self) -> None:
        super()._start_control_server()
        app = self.app
        app.keeper = CacheKeeper(app.database_url, app.cache_check_s, self.log)
        app.keeper.start()


class _Gunicorn(BaseApplication):
    def __init__(self, config: ServeConfig, database_url: str, secret: str):
        self.config = config
        self.database_url = database_url
        self.secret = secret
        self.cache_check_s = cache_check_interval()
        self.keeper: CacheKeeper | None = None
        super().__init__(prog="ootd serve")

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # as gunicorn's BaseApplication.run
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)

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
            "control_socket_disable": True,  # gunicorn's default path is per user: instances would share it
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
