"""The routes: authenticate, validate, call one ootd.* function, shape JSON.

No business logic lives here.  Input is checked before it reaches the
database so that every client mistake gets a precise 4xx; the database's own
checks (unknown user or outfit, limit range) stay the second guard and are
mapped in api/connector.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify, request

from api import metrics
from api.auth import MAX_USER_ID, authenticate
from api.connector import Database
from api.errors import ApiError, bad_request, error_response
from api.openapi import spec

bp = Blueprint("ootd", __name__)

MAX_LIMIT = 20
_DIGITS = re.compile(r"[0-9]{1,19}")
# "+05:30" arrives as " 05:30" when a client forgets to percent-encode "+".
_UNENCODED_PLUS = re.compile(r"^(.*[0-9.])[ ]([0-9]{2}(?::?[0-9]{2})?)$")


# ------------------------------------------------------------------ parsing --
def parse_id(text: str, what: str) -> int:
    """A positive 64-bit integer from a path segment; 400 otherwise."""
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_USER_ID:
        raise bad_request(f"invalid_{what}", f"{what} must be an integer between 1 and {MAX_USER_ID}, got {text!r}")
    return int(text)


def parse_at(text: str | None) -> datetime | None:
    """An ISO 8601 timestamp with a UTC offset (naive times are ambiguous: 400)."""
    if text is None:
        return None
    candidate = _UNENCODED_PLUS.sub(r"\1+\2", text.strip())
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        raise bad_request("invalid_at", f"at must be an ISO 8601 timestamp with a UTC offset, "
                                        f"e.g. 2026-04-20T15:00:00Z; got {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise bad_request("invalid_at", f"at must include a UTC offset (Z or +HH:MM); got {text!r}")
    return value


def parse_limit(text: str | None) -> int:
    if text is None:
        return 3
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request("invalid_limit", f"limit must be an integer between 1 and {MAX_LIMIT}, got {text!r}")
    return int(text)


def json_body() -> dict[str, Any]:
    """The request's JSON object: 415 for another content type, 413 past MAX_CONTENT_LENGTH, 400 if malformed."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}")
    data = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, huge integers
        raise bad_request("invalid_json", "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("invalid_body", "request body must be a JSON object")
    return value


def outfit_id_from(body: dict[str, Any]) -> int:
    unknown = sorted(set(body) - {"outfit_id"})
    if unknown:
        raise bad_request("invalid_body", f"unknown field {unknown[0]!r} (expected only outfit_id)")
    if "outfit_id" not in body:
        raise bad_request("invalid_body", "outfit_id is required")
    value = body["outfit_id"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_USER_ID:
        raise bad_request("invalid_outfit_id", f"outfit_id must be an integer between 1 and {MAX_USER_ID}")
    return value


# --------------------------------------------------------------------- auth --
def _db() -> Database:
    return current_app.extensions["ootd"].db


def user_route(view: Callable[..., Response]) -> Callable[..., Response]:
    """401 without a valid token, 400 for a bad id, 403 when the token names another user."""

    @wraps(view)
    def wrapper(user_id: str, **kwargs: Any) -> Response:
        subject = authenticate(request.headers.get("Authorization"), current_app.extensions["ootd"].secret)
        uid = parse_id(user_id, "user_id")
        if uid != subject:
            raise ApiError(403, "forbidden", f"this token is for user {subject}, not user {uid}")
        return view(uid, **kwargs)

    return wrapper


# ------------------------------------------------------------------- routes --
@bp.get("/v1/users/<user_id>/feed", provide_automatic_options=False)
@user_route
def feed(user_id: int) -> Response:
    at = parse_at(request.args.get("at"))
    limit = parse_limit(request.args.get("limit"))
    rows = _db().feed(user_id, at, limit)
    if not rows:
        metrics.FEEDS_EMPTY.inc()
        raise ApiError(503, "no_pools", "no outfit pools exist yet (run ootd nightly)", {"Retry-After": "60"})
    first = rows[0]
    relaxed = list(first["relaxed_rules"] or [])
    if relaxed:
        metrics.FEEDS_RELAXED.inc()
        metrics.RULES_RELAXED.inc(len(relaxed))
    return jsonify({
        "user_id": user_id,
        "cluster_id": first["cluster_id"],
        "headline": first["headline"],
        "daypart": first["daypart"],
        "relaxed_rules": relaxed,
        "items": [{"rank": r["rank"], "outfit_id": r["outfit_id"], "title": r["title"], "category": r["category"],
                   "color": r["color"], "daypart": r["daypart"], "score": r["score"]} for r in rows],
    })


@bp.post("/v1/users/<user_id>/likes", provide_automatic_options=False)
@user_route
def like(user_id: int) -> Response:
    outfit_id = outfit_id_from(json_body())
    created = _db().like(user_id, outfit_id)
    metrics.LIKES.labels("like", "new" if created else "existing").inc()
    response = jsonify({"user_id": user_id, "outfit_id": outfit_id, "liked": True, "created": created})
    response.status_code = 201 if created else 200
    if created:
        response.headers["Location"] = f"/v1/users/{user_id}/likes/{outfit_id}"
    return response


@bp.delete("/v1/users/<user_id>/likes/<outfit_id>", provide_automatic_options=False)
@user_route
def unlike(user_id: int, outfit_id: str) -> Response:
    oid = parse_id(outfit_id, "outfit_id")
    removed = _db().unlike(user_id, oid)
    metrics.LIKES.labels("unlike", "removed" if removed else "absent").inc()
    return jsonify({"user_id": user_id, "outfit_id": oid, "liked": False, "removed": removed})


@bp.get("/healthz", provide_automatic_options=False)
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz", provide_automatic_options=False)
def readyz() -> Response:
    status = _db().serving_status(timeout=2.0)  # 503 when the database is unreachable
    if not status["ready"]:
        return error_response(503, "not_ready", f"no pools for {status['pool_date']} yet (run ootd nightly)",
                              {"Retry-After": "60"})
    return jsonify({"status": "ready", "pool_date": status["pool_date"].isoformat(), "pools": status["pools"],
                    "cached_pools": status["cached_pools"], "fallback_pools": status["fallback_pools"]})


@bp.get("/metrics", provide_automatic_options=False)
def metrics_view() -> Response:
    try:
        metrics.record_serving_status(_db().serving_status(timeout=1.0))
    except ApiError:
        metrics.record_serving_status(None)
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json", provide_automatic_options=False)
def openapi() -> Response:
    return jsonify(spec())
