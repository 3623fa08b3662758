"""The Flask app factory.

`create_app(url, secret)` wires the routes (api/routes.py), the pool
(api/connector.py), the JSON error handlers and the per-route metrics.
`ootd serve` runs it under gunicorn (api/server.py); tests use it directly
with Flask's test client against a real database.
"""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError

from api import metrics
from api.auth import Authenticator
from api.connector import Database
from api.errors import ApiError, error_response
from api.replicas import ReadRouter, ReplicaSettings, settings_from_env

log = logging.getLogger("ootd.api")

MAX_BODY_BYTES = 4096


@dataclass
class State:
    db: Database
    auth: Authenticator
    reads: ReadRouter | None = None  # DATABASE_READ_URLS: feeds on read replicas (api/replicas.py)
    lsn_cookie_max_age: int = 60

    def close(self) -> None:
        """Close every pool (the primary's and the replicas')."""
        try:
            if self.reads is not None:
                self.reads.close()
        finally:
            self.db.close()


def _code(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def create_app(
    database_url: str | None = None,
    secret: str | None = None,
    *,
    pool_min: int = 1,
    pool_max: int = 4,
    pool_timeout: float = 5.0,
    replicas: ReplicaSettings | None = None,
) -> Flask:
    """The API over `database_url` (default: DATABASE_URL or the embedded server).

    `secret` signs and checks tokens (default: OOTD_API_SECRET, else the
    per-install secret file; see api/auth.py).  `replicas`: the read replicas
    feeds may run on (default: DATABASE_READ_URLS, OOTD_REPLICA_MAX_LAG_S and
    OOTD_REPLICA_CHECK_S; none when unset; see api/replicas.py).
    """
    from api.auth import load_secret
    from api.routes import bp
    from api.simulator import bp as simulator_bp
    from db.connect import database_url as default_url

    app = Flask("ootd.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if replicas is None:
        replicas = settings_from_env()
    db = Database(database_url or default_url(), min_size=pool_min, max_size=pool_max, timeout=pool_timeout)
    state = app.extensions["ootd"] = State(db=db, auth=Authenticator(secret or load_secret()))
    if replicas is not None and replicas.urls:
        state.reads = ReadRouter(db, replicas, pool_max=pool_max, pool_timeout=pool_timeout)
        state.lsn_cookie_max_age = replicas.cookie_max_age
    app.register_blueprint(bp)
    app.register_blueprint(simulator_bp)

    app.wsgi_app = _timed(app.wsgi_app)

    @app.after_request
    def _observe(response: Response) -> Response:
        req = request._get_current_object()  # one proxy lookup, not one per attribute
        rule = req.url_rule
        metrics.observe(
            rule.rule if rule is not None else "unmatched",
            req.method,
            response.status_code,
            time.perf_counter() - req.environ.get(_STARTED, time.perf_counter()),
        )
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if isinstance(exc, InternalServerError):  # an exception outside the views (e.g. in after_request)
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc.original_exception)
            return error_response(500, "internal", "internal error")
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        message = exc.description or exc.name
        if exc.code == 404:
            message = f"no route for {request.method} {request.path}"
        elif exc.code == 405:
            message = f"{request.method} is not allowed on {request.path}"
        elif exc.code == 413:
            message = f"request body larger than {MAX_BODY_BYTES} bytes"
        return error_response(exc.code or 500, _code(exc), message, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")

    return app


_STARTED = "ootd.started"


def _timed(wsgi_app):
    """Stamp the request's start in its WSGI environ (cheaper than a before_request hook); bound a chunked body."""

    def app(environ, start_response):
        environ[_STARTED] = time.perf_counter()
        if "HTTP_TRANSFER_ENCODING" in environ and environ.get("wsgi.input_terminated"):
            _buffer_body(environ)
        return wsgi_app(environ, start_response)

    return app


def _buffer_body(environ: dict, limit: int = MAX_BODY_BYTES) -> None:
    """Give a body sent without Content-Length (Transfer-Encoding: chunked, decoded by the server) one, as a
    buffering proxy does: read at most `limit` + 1 bytes of it, whatever the client sends, and declare those.

    Werkzeug bounds such a stream at MAX_CONTENT_LENGTH but stops there silently: a 5 KB chunked like came
    through as its first 4 KiB (valid JSON when the rest was spaces) and 10 MiB as 4 KiB of invalid JSON.
    Declared, a body past the limit is a Content-Length past MAX_CONTENT_LENGTH: the same 413 as any other.
    A malformed chunk raises here, outside Flask, and gunicorn answers 400 (api/server.py).
    """
    stream = environ["wsgi.input"]
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))
    del environ["HTTP_TRANSFER_ENCODING"]  # Werkzeug ignores Content-Length next to chunked
