"""The one error shape every response uses: `{"error": {"code", "message"}}`.

Views raise `ApiError`; the app's handlers turn it, Werkzeug's HTTP errors
(404 for unknown routes, 405, 413) and anything unexpected (500, logged) into
that JSON body, so a client never has to parse HTML.  Requests gunicorn itself
rejects before the app sees them (a request line or headers past its limits,
malformed HTTP) get the same body from the worker class in api/server.py.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from flask import Response

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class ApiError(Exception):
    """An HTTP error with a stable machine-readable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Compact JSON, without jsonify's per-call app lookups (the feed is the hot path)."""
    return Response(_ENCODER.encode(body), status=status, headers=headers, mimetype="application/json")


def error_body(code: str, message: str) -> str:
    """The JSON text of an error (also written by the gunicorn worker, outside any app)."""
    return _ENCODER.encode({"error": {"code": code, "message": message}})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(code, message), status=status, headers=headers, mimetype="application/json")


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)
