"""The routes: authenticate, validate, call one ootd.* function, shape JSON.

No business logic lives here.  Input is checked before it reaches the
database so that every client mistake gets a precise 4xx; the database's own
checks (unknown user or outfit, limit range) stay the second guard and are
mapped in api/connector.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any, Callable, Mapping

from flask import Blueprint, Response, current_app, request

from api import metrics
from api.auth import MAX_USER_ID, token_revoked
from api.connector import FEED_COLUMNS, Database
from api.errors import ApiError, bad_request, error_response, json_response
from api.openapi import spec
from api.replicas import MIN_LSN_COOKIE, MIN_LSN_HEADER, SERVED_BY_HEADER, min_lsn_from

bp = Blueprint("ootd", __name__)

MAX_LIMIT = 20
_ITEM_KEYS = FEED_COLUMNS[:7]  # rank .. score
_DIGITS = re.compile(r"[0-9]{1,19}")
_LIMIT = re.compile(r"[0-9]{1,3}")
# "+05:30" arrives as " 05:30" when a client forgets to percent-encode "+".
_UNENCODED_PLUS = re.compile(r"^(.*[0-9.])[ ]([0-9]{2}(?::?[0-9]{2})?)$")
_LEAP_SECOND = re.compile(r"(?<=T[0-9]{2}:[0-9]{2}):60(?=[.,Z+-]|$)")


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
    candidate = _UNENCODED_PLUS.sub(r"\1+\2", text.strip()).upper()  # RFC 3339 allows "t" and "z"
    leap = _LEAP_SECOND.search(candidate)  # 23:59:60 is valid RFC 3339; datetime stops at :59
    if leap:
        candidate = candidate[: leap.start()] + ":59" + candidate[leap.end() :]
    try:
        value = datetime.fromisoformat(candidate)
        if value.tzinfo is None or value.utcoffset() is None:
            raise bad_request("invalid_at", f"at must include a UTC offset (Z or +HH:MM); got {text!r}")
        value = value.astimezone(timezone.utc) + timedelta(seconds=1 if leap else 0)
    except (ValueError, OverflowError):  # not ISO 8601, or out of range once moved to UTC
        raise bad_request(
            "invalid_at",
            f"at must be an ISO 8601 timestamp with a UTC offset between years "
            f"1 and 9999, e.g. 2026-04-20T15:00:00Z; got {text!r}",
        ) from None
    return value


def parse_limit(text: str | None) -> int:
    if text is None:
        return 3
    if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_request("invalid_limit", f"limit must be an integer between 1 and {MAX_LIMIT}, got {text!r}")
    return int(text)


def json_body() -> dict[str, Any]:
    """The request's JSON object: 415 for another content type, 413 past MAX_CONTENT_LENGTH, 400 if malformed."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type: application/json, got {request.mimetype or 'none'!r}",
        )
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
    if isinstance(value, float) and value.is_integer():  # JSON Schema: 5.0 is the integer 5
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_USER_ID:
        raise bad_request("invalid_outfit_id", f"outfit_id must be an integer between 1 and {MAX_USER_ID}")
    return value


# ------------------------------------------------------------ auth, state --
def _db() -> Database:
    return current_app.extensions["ootd"].db


def user_route(*query: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """401 without a valid token, 400 for a bad id, 403 when the token names another user, 401 when
    it was revoked (its generation is not the user's in the database: one ootd.token_generation call
    on the primary per request, so a revoke holds at once for every worker), 400 for a query
    parameter other than `query` (a typo such as `limt=5` must not pass silently)."""
    allowed = frozenset(query)

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(user_id: str, **kwargs: Any) -> Response:
            req = request._get_current_object()  # one proxy lookup, not one per attribute
            state = current_app.extensions["ootd"]
            subject, generation = state.auth.subject(req.headers.get("Authorization"))
            uid = parse_id(user_id, "user_id")
            if uid != subject:
                raise ApiError(403, "forbidden", f"this token is for user {subject}, not user {uid}")
            if state.db.token_generation(uid) != generation:
                raise token_revoked()
            args = req.args
            if args and not allowed.issuperset(args):
                unknown = sorted(set(args) - allowed)[0]
                expected = ", ".join(sorted(allowed)) or "none"
                raise bad_request("invalid_parameter", f"unknown query parameter {unknown!r} (expected: {expected})")
            return view(state.db, args, uid, **kwargs)

        return wrapper

    return decorate


# ------------------------------------------------------------------- routes --
@bp.get("/v1/users/<user_id>/feed", provide_automatic_options=False)
@user_route("at", "limit")
def feed(db: Database, args: Mapping[str, str], user_id: int) -> Response:
    at = parse_at(args.get("at"))
    limit = parse_limit(args.get("limit"))
    req = request._get_current_object()
    min_lsn = min_lsn_from(
        req.headers.get(MIN_LSN_HEADER),
        req.cookies.get(MIN_LSN_COOKIE) if "HTTP_COOKIE" in req.environ else None,
    )
    reads = current_app.extensions["ootd"].reads
    headers = None
    if reads is None:
        rows = db.feed(user_id, at, limit)
    else:  # a replica, or the primary when none can serve this request (api/replicas.py)
        rows, served_by = reads.feed(user_id, at, limit, min_lsn)
        headers = {SERVED_BY_HEADER: served_by}
    if not rows:
        metrics.FEEDS_EMPTY.inc()
        raise ApiError(503, "no_pools", "no outfit pools exist yet (run ootd nightly)", {"Retry-After": "60"})
    _, _, _, _, _, daypart, _, headline, cluster_id, relaxed, variant = rows[0]
    relaxed = list(relaxed or ())
    if relaxed:
        metrics.FEEDS_RELAXED.inc()
        metrics.RULES_RELAXED.inc(len(relaxed))
    return json_response(
        {
            "user_id": user_id,
            "cluster_id": cluster_id,
            "headline": headline,
            "daypart": daypart,
            "relaxed_rules": relaxed,
            "variant": variant,  # the user's variant of the running experiment; None when none runs
            "items": [dict(zip(_ITEM_KEYS, row)) for row in rows],  # the first 7 columns
        },
        headers=headers,
    )


def _write_lsn(response: Response, user_id: int, lsn: str | None) -> Response:
    """With read replicas: the like's commit LSN, as a header and as a cookie for this user's routes."""
    if lsn is not None:
        response.headers[MIN_LSN_HEADER] = lsn
        response.set_cookie(
            MIN_LSN_COOKIE,
            lsn,
            max_age=current_app.extensions["ootd"].lsn_cookie_max_age,
            path=f"/v1/users/{user_id}/",
            httponly=True,
            samesite="Strict",
        )
    return response


@bp.post("/v1/users/<user_id>/likes", provide_automatic_options=False)
@user_route()
def like(db: Database, args: Mapping[str, str], user_id: int) -> Response:
    outfit_id = outfit_id_from(json_body())
    lsn = None
    if current_app.extensions["ootd"].reads is None:
        created = db.like(user_id, outfit_id)
    else:
        created, lsn = db.like_at_lsn(user_id, outfit_id)
    metrics.LIKES.labels("like", "new" if created else "existing").inc()
    response = json_response(
        {"user_id": user_id, "outfit_id": outfit_id, "liked": True, "created": created},
        201 if created else 200,
        {"Location": f"/v1/users/{user_id}/likes/{outfit_id}"} if created else None,
    )
    return _write_lsn(response, user_id, lsn)


@bp.delete("/v1/users/<user_id>/likes/<outfit_id>", provide_automatic_options=False)
@user_route()
def unlike(db: Database, args: Mapping[str, str], user_id: int, outfit_id: str) -> Response:
    oid = parse_id(outfit_id, "outfit_id")
    lsn = None
    if current_app.extensions["ootd"].reads is None:
        removed = db.unlike(user_id, oid)
    else:
        removed, lsn = db.unlike_at_lsn(user_id, oid)
    metrics.LIKES.labels("unlike", "removed" if removed else "absent").inc()
    response = json_response({"user_id": user_id, "outfit_id": oid, "liked": False, "removed": removed})
    return _write_lsn(response, user_id, lsn)


@bp.get("/healthz", provide_automatic_options=False)
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz", provide_automatic_options=False)
def readyz() -> Response:
    status = _db().serving_status(timeout=2.0)  # 503 when the database is unreachable
    if status["unreachable_nodes"]:  # a Citus worker the API's role cannot reach: its users' feeds would fail
        return error_response(
            503,
            "not_ready",
            f"{status['unreachable_nodes']} database node(s) of the cluster unreachable as the API's role",
            {"Retry-After": "5"},
        )
    if not status["ready"]:
        return error_response(
            503, "not_ready", f"no pools for {status['pool_date']} yet (run ootd nightly)", {"Retry-After": "60"}
        )
    body = {
        "status": "ready",
        "pool_date": status["pool_date"].isoformat(),
        "pools": status["pools"],
        "cached_pools": status["cached_pools"],
        "fallback_pools": status["fallback_pools"],
        "standby": status["standby"],
        "replay_lag_s": status["replay_lag_s"],
    }
    reads = current_app.extensions["ootd"].reads
    if reads is not None:  # informative: a replica down or lagging costs no readiness (the primary serves)
        body["replicas"] = reads.status()
    return json_response(body)


@bp.get("/metrics", provide_automatic_options=False)
def metrics_view() -> Response:
    try:
        metrics.record_serving_status(_db().serving_status(timeout=1.0))
    except ApiError:
        metrics.record_serving_status(None)
    reads = current_app.extensions["ootd"].reads
    if reads is not None:
        for replica in reads.replicas:
            replica.refresh()  # sets its state and lag gauges
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json", provide_automatic_options=False)
def openapi() -> Response:
    return json_response(spec())
