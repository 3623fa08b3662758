"""The Last-Mile Pipeline simulator: one page and the JSON it reads, over ootd.simulate.

Routes (all reads; nothing here writes):

- `GET /simulator`: the page (api/templates/simulator.html, api/static/simulator.{js,css}), served with a
  Content-Security-Policy that allows only this origin's script and style, no inline code.
- `POST /v1/simulate`: a **what-if** profile ranked against a pool.  No token; the body carries the whole
  profile and may not name a user (`user_id` is refused), so this route reads no personal data.
- `POST /v1/users/<id>/simulate`: that user's own profile (ootd.user_profile, read inside the one
  statement), with the user's token, exactly like the feed route.
- `GET /v1/pools?date=D`: the pools of a date (default: the latest), for the page's picker.
- `GET /v1/llm-calls?since=T`: LLM requests in the ledger since T (the page shows it stays 0).

The ranking itself is ootd.simulate's, which shares ootd.feed's code; this module only checks input,
calls one named query and shapes JSON.  Bad input is a 4xx with the JSON error shape.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from typing import Any, Mapping

from flask import Blueprint, Response, current_app, render_template, request

from api.auth import MAX_USER_ID
from api.connector import Database
from api.errors import ApiError, bad_request, json_response
from api.routes import MAX_LIMIT, json_body, parse_at, user_route

bp = Blueprint(
    "simulator",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/simulator/static",
)

#: No inline script or style, no other origin, no framing, no plugins: the page's JS and CSS are files.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

#: The keys of an ootd.users row a what-if profile may set.  `user_id` is deliberately absent: naming a
#: user would let an anonymous caller rank with that user's likes or tie-break.
PROFILE_KEYS = frozenset({"city", "style_dna", "style_rules", "taste", "liked_outfits"})
BODY_KEYS = frozenset({"at", "date", "time", "weights", "cluster_id", "limit"})
TASTE_DIMENSIONS = 32
#: A taste vector's numbers stay within +-MAX_TASTE and at least one is MIN_TASTE or more in size: pgvector
#: computes cosine in single precision, so a vector of zeros (or of numbers whose squares underflow) has no
#: direction and its cosine would be NaN, which JSON cannot carry.
MAX_TASTE = 1e6
MIN_TASTE = 1e-6
MAX_LIKED = 200
MAX_WEIGHTS = 32
#: A what-if weight is 0 or between MIN_WEIGHT and MAX_WEIGHT in size: past those, products of weights in the
#: ranking overflow or underflow double precision (PostgreSQL's 22003, a bare "value out of range"), so they are
#: refused here with a precise message.  The database's ootd._weight_limits() is the home of both numbers (its
#: weight ranges, the scoring_weights CHECK and experiments use them); tests/test_bounds.py holds these equal.
MIN_WEIGHT, MAX_WEIGHT = 1e-12, 1e6
#: The simulated instant's year (of `at` as written, or of the local `date`): the answer carries the instant and
#: the city's local time, which must both stay within years 1..9999 whatever the city's UTC offset.
MIN_YEAR, MAX_YEAR = 2, 9998
_CLUSTER_ID = re.compile(r"[0-9]{8}_[A-Za-z]{1,40}_[A-Za-z]{1,40}")
_WEIGHT_NAME = re.compile(r"[a-z_]{1,40}")
_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CITY = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_EDGE_YEAR = re.compile(r"\s*(0000|0001|9999)")

#: The columns of each ranked item in the JSON (ootd.simulate's, but the per-pool ones said once).
ITEM_KEYS = (
    "rank",
    "outfit_id",
    "title",
    "category",
    "color",
    "daypart",
    "vetoed_by",
    "priority",
    "color_boost",
    "category_boost",
    "affinity_boost",
    "liked_penalty",
    "cosine",
    "daypart_bonus",
    "jitter",
    "score",
    "source",
    "drawn_from",
    "archetype_boost",
)


def _db() -> Database:
    return current_app.extensions["ootd"].db


# ------------------------------------------------------------------ parsing --
def parse_date(text: str | None, what: str = "date") -> date | None:
    if text is None:
        return None
    try:
        if not isinstance(text, str) or not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request(f"invalid_{what}", f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


def _only(args: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise bad_request(
            "invalid_parameter", f"unknown {where} {unknown[0]!r} (expected: {', '.join(sorted(allowed))})"
        )


def _number(value: Any, bound: float) -> bool:
    """A JSON number (not a boolean) within +-bound; an integer too large for a float is simply out of bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (isinstance(value, int) or math.isfinite(value)) and -bound <= value <= bound


def _integer(value: Any) -> Any:
    """JSON Schema's integer: 5.0 is the integer 5 (a boolean is none); anything else is returned as it is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _names(value: Any, field: str) -> list[str]:
    if (
        not isinstance(value, list)
        or len(value) > 100
        or not all(isinstance(v, str) and 0 < len(v) <= 60 for v in value)
    ):
        raise bad_request("invalid_profile", f"{field} must be a list of names")
    return value


def what_if_profile(value: Any) -> dict[str, Any]:
    """A what-if profile checked for shape; names (city, archetype, categories, colors) are the database's to check."""
    if not isinstance(value, dict):
        raise bad_request("invalid_profile", "profile must be a JSON object")
    if "user_id" in value:
        raise bad_request(
            "invalid_profile",
            "a what-if profile cannot name a user; a real user's profile is POST /v1/users/<id>/simulate with "
            "that user's token",
        )
    _only(value, PROFILE_KEYS, "profile key")
    city = value.get("city")
    if not isinstance(city, str) or not _CITY.fullmatch(city):
        raise bad_request("invalid_profile", "profile.city must be a city name (see the page's list)")
    for key in ("style_dna", "style_rules"):
        if not isinstance(value.get(key, {}), dict):
            raise bad_request("invalid_profile", f"profile.{key} must be a JSON object")
    for key in ("preferred_colors",):
        if key in value.get("style_dna", {}):
            _names(value["style_dna"][key], f"profile.style_dna.{key}")
    for key in ("liked_categories", "disliked_categories", "disliked_colors"):
        if key in value.get("style_rules", {}):
            _names(value["style_rules"][key], f"profile.style_rules.{key}")
    taste = value.get("taste")
    if taste is not None and not (
        isinstance(taste, list)
        and len(taste) == TASTE_DIMENSIONS
        and all(_number(x, MAX_TASTE) for x in taste)
        and any(abs(x) >= MIN_TASTE for x in taste)
    ):
        raise bad_request(
            "invalid_profile",
            f"profile.taste must be null or {TASTE_DIMENSIONS} numbers between -{MAX_TASTE:g} and {MAX_TASTE:g}, "
            f"at least one of them {MIN_TASTE:g} or more in size",
        )
    liked = value.get("liked_outfits", [])
    if isinstance(liked, list):
        liked = [_integer(x) for x in liked]
    if (
        not isinstance(liked, list)
        or len(liked) > MAX_LIKED
        or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= MAX_USER_ID for x in liked)
    ):
        raise bad_request("invalid_profile", f"profile.liked_outfits must be a list of at most {MAX_LIKED} outfit ids")
    if "liked_outfits" in value:
        value = {**value, "liked_outfits": liked}
    return value


def simulation_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """The call's instant (at, or local date + time in the profile's city), weights, pool and limit."""
    _only(body, BODY_KEYS, "field")
    at = body.get("at")
    if at is not None and not isinstance(at, str):
        raise bad_request("invalid_at", "at must be an ISO 8601 string")
    if at is not None and _EDGE_YEAR.match(at):
        raise bad_request("invalid_at", f"at must be in years {MIN_YEAR:04d} to {MAX_YEAR}, got {at!r}")
    day, time = body.get("date"), body.get("time")
    if at is not None and (day is not None or time is not None):
        raise bad_request("invalid_parameter", "give either at, or date and time (local to the profile's city)")
    if (day is None) != (time is None):
        raise bad_request("invalid_parameter", "date and time go together (local wall-clock time in the city)")
    if time is not None and (not isinstance(time, str) or not _TIME.fullmatch(time)):
        raise bad_request("invalid_time", f"time must be HH:MM between 00:00 and 23:59, got {time!r}")
    weights = body.get("weights", {})
    if not isinstance(weights, dict) or len(weights) > MAX_WEIGHTS:
        raise bad_request("invalid_weights", "weights must be a JSON object of weight names and numbers")
    for name, value in weights.items():
        if not _WEIGHT_NAME.fullmatch(name) or not _number(value, MAX_WEIGHT) or 0 < abs(value) < MIN_WEIGHT:
            raise bad_request(
                "invalid_weights",
                f"weight {name[:40]!r} must be a weight name with a number that is 0 or between {MIN_WEIGHT:g} "
                f"and {MAX_WEIGHT:g} in size",
            )
    cluster_id = body.get("cluster_id")
    if cluster_id is not None and (not isinstance(cluster_id, str) or not _CLUSTER_ID.fullmatch(cluster_id)):
        raise bad_request("invalid_cluster_id", "cluster_id must look like 20260420_Minimal_Sunny, or be null")
    limit = _integer(body.get("limit", 3))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise bad_request("invalid_limit", f"limit must be an integer between 1 and {MAX_LIMIT}")
    day = parse_date(day)
    if day is not None and not MIN_YEAR <= day.year <= MAX_YEAR:
        raise bad_request("invalid_date", f"date must be in years {MIN_YEAR:04d} to {MAX_YEAR}, got {body['date']!r}")
    return {
        "at": parse_at(at),
        "day": day,
        "time": time,
        "weights": weights,
        "cluster_id": cluster_id,
        "limit": limit,
    }


# ---------------------------------------------------------------- shaping --
def _iso(value: datetime | date | None) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value.isoformat() if value is not None else None


def simulation_body(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    if not rows:
        raise ApiError(503, "no_pools", "no outfit pools exist yet (run ootd nightly)", {"Retry-After": "60"})
    first = rows[0]
    local = first["sim_local"]
    return {
        "headline": first["headline"],
        "cluster_id": first["cluster_id"],
        "pool_date": _iso(first["pool_date"]),
        "relaxed_rules": list(first["relaxed_rules"] or ()),
        # a real user's variant of the running experiment, whose weights ranked this (under any weights the call
        # replaced); None when none runs, and always for a what-if profile, which names no user
        "variant": first["variant"],
        "priority_daypart": next((r["daypart"] for r in rows if r["priority"]), None),
        "at": _iso(first["sim_at"]),
        "local_time": local.isoformat(" ", "minutes") if local else None,
        "city": first["sim_city"],
        "timezone": first["sim_timezone"],
        "limit": limit,
        "items": [{key: list(r[key]) if key == "vetoed_by" else r[key] for key in ITEM_KEYS} for r in rows],
    }


# ------------------------------------------------------------------- routes --
@bp.get("/simulator", provide_automatic_options=False)
def page() -> Response:
    catalog = _db().simulator_catalog()
    pools = catalog["pools"] or []
    body = render_template(
        "simulator.html",
        catalog=catalog,
        latest_date=pools[0]["pool_date"] if pools else None,
        since=_iso(datetime.now(timezone.utc)),
    )
    return Response(body, mimetype="text/html", headers=PAGE_HEADERS)


@bp.post("/v1/simulate", provide_automatic_options=False)
def simulate_what_if() -> Response:
    if request.args:
        raise bad_request("invalid_parameter", f"unknown query parameter {sorted(request.args)[0]!r} (expected: none)")
    body = json_body()
    if "profile" not in body:
        raise bad_request("invalid_profile", "profile is required (a what-if profile: city, style_dna, style_rules)")
    profile = what_if_profile(body.pop("profile"))
    params = simulation_params(body)
    params["profile"] = profile
    body = simulation_body(_db().simulate(params), params["limit"])
    return json_response({"mode": "what_if", **body})


@bp.post("/v1/users/<user_id>/simulate", provide_automatic_options=False)
@user_route()
def simulate_user(db: Database, args: Mapping[str, str], user_id: int) -> Response:
    params = simulation_params(json_body())
    body = simulation_body(db.simulate(params, user_id=user_id), params["limit"])
    return json_response({"mode": "user", "user_id": user_id, **body})


@bp.get("/v1/pools", provide_automatic_options=False)
def pools() -> Response:
    _only(request.args, frozenset({"date"}), "query parameter")
    day = parse_date(request.args.get("date"))
    rows = _db().pool_catalog(day)
    return json_response(
        {
            "pool_date": _iso(rows[0]["pool_date"]) if rows else _iso(day),
            "pools": [{**row, "pool_date": _iso(row["pool_date"])} for row in rows],
        }
    )


@bp.get("/v1/llm-calls", provide_automatic_options=False)
def llm_calls() -> Response:
    _only(request.args, frozenset({"since"}), "query parameter")
    since = parse_at(request.args.get("since"))
    if since is None:
        raise bad_request("invalid_since", "since is required: an ISO 8601 timestamp with a UTC offset")
    return json_response({"since": _iso(since), "calls": _db().llm_calls_since(since)})
