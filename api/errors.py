"""The one error shape every response uses: `{"error": {"code", "message"}}`.

Views raise `ApiError`; the app's handlers turn it, Werkzeug's HTTP errors
(404 for unknown routes, 405, 413) and anything unexpected (500, logged) into
that JSON body, so a client never has to parse HTML.
"""

from __future__ import annotations

from typing import Mapping

from flask import Response, jsonify


class ApiError(Exception):
    """An HTTP error with a stable machine-readable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)
