"""The OpenAPI 3.1 description served at /openapi.json.

It is written to match the real responses, status by status, and
tests/test_api_schemathesis.py holds the app to it with schemathesis.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MAX_ID = 2**63 - 1

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def _error(description: str, headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
_AUTH_ERRORS = {
    "401": _error(
        "Missing, malformed, expired or forged token.",
        {
            "WWW-Authenticate": {
                "description": 'Bearer challenge (RFC 6750), e.g. Bearer realm="ootd", error="invalid_token"',
                "schema": {"type": "string"},
            }
        },
    ),
    "403": _error("The token names another user."),
}
#: Read replicas (api/replicas.py): headers only present when DATABASE_READ_URLS is set.
_LSN_PATTERN = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_WRITE_LSN = {
    "Ootd-Min-LSN": {
        "description": "With read replicas: the primary's WAL position at this write's commit. Send it back "
        "(this header, or the ootd_min_lsn cookie set alongside) with the next feed request to read this write.",
        "schema": {"type": "string", "pattern": _LSN_PATTERN},
    },
    "Set-Cookie": {
        "description": "With read replicas: ootd_min_lsn=<the same LSN>, for this user's paths, short-lived.",
        "schema": {"type": "string"},
    },
}
_SERVED_BY = {
    "Ootd-Served-By": {
        "description": "With read replicas: the database that answered (primary, replica-1, replica-2, ...).",
        "schema": {"type": "string"},
    }
}
_UNAVAILABLE = _error(
    "The database is unreachable or busy, or read-only (a hot standby: code read_only); retry.", _RETRY_AFTER
)


#: The simulator (api/simulator.py).  Names (cities, archetypes, categories, colors) are data, the vocabulary of
#: the database (GET /simulator lists them): a name it does not know is a 400, which no schema here can foresee.
_NULLABLE_AT = {
    "type": ["string", "null"],
    "format": "date-time",
    "pattern": "^(?!0000|0001|9999)",
    "description": "The instant to simulate, ISO 8601 with a UTC offset, in years 0002 to 9998 (the answer carries "
    "it and the city's local time). Instead of date and time; null or absent: date and time, else now.",
}
_LOCAL_DATE = {
    "type": ["string", "null"],
    "format": "date",
    "pattern": "^(?!0000|0001|9999)",
    "description": "Local date in the profile's city (years 0002 to 9998); goes with time. Null: absent.",
}
_LOCAL_TIME = {
    "type": ["string", "null"],
    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
    "examples": ["15:00"],
    "description": "Local wall-clock time HH:MM in the profile's city (its IANA zone); goes with date. Null: absent.",
}
_NAME = {"type": "string", "minLength": 1, "maxLength": 60}
_NAMES = {"type": "array", "maxItems": 100, "items": _NAME}
_SIMULATION_FIELDS: dict[str, Any] = {
    "at": _NULLABLE_AT,
    "date": _LOCAL_DATE,
    "time": _LOCAL_TIME,
    "weights": {"$ref": "#/components/schemas/Weights"},
    "cluster_id": {
        "type": ["string", "null"],
        "pattern": "^[0-9]{8}_[A-Za-z]{1,40}_[A-Za-z]{1,40}$",
        "examples": ["20260420_Minimal_Sunny"],
        "description": "A pool to rank (GET /v1/pools); an unknown one is a 404. Null or absent: the pool "
        "ootd.feed would serve the profile at that moment.",
    },
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": 20,
        "default": 3,
        "description": "How many of the ranking make the feed (every candidate is returned, ranked).",
    },
}
#: `at` excludes date and time; date and time go together (a null one counts as absent).
_SIMULATION_RULES = [
    {
        "if": {"required": ["at"], "properties": {"at": {"type": "string"}}},
        "then": {"properties": {"date": {"type": "null"}, "time": {"type": "null"}}},
    },
    {
        "if": {"required": ["date"], "properties": {"date": {"type": "string"}}},
        "then": {"required": ["time"], "properties": {"time": {"type": "string"}}},
    },
    {
        "if": {"required": ["time"], "properties": {"time": {"type": "string"}}},
        "then": {"required": ["date"], "properties": {"date": {"type": "string"}}},
    },
]
_SIMULATION_400 = (
    "Malformed JSON (invalid_json) or not an object (invalid_body); an unknown field or query parameter, `at` "
    "with date or time, date without time (invalid_parameter); a bad at, date, time, weights, cluster_id or "
    "limit (invalid_at, invalid_date, invalid_time, invalid_weights, invalid_cluster_id, invalid_limit); an unknown "
    "or out-of-range weight, or a ranking whose numbers overflow (the database's 22023: invalid_parameter)."
)
_SIMULATION_503 = _error(
    "No outfit pools exist yet (code no_pools); a database without the simulator's functions or grants "
    "(not_migrated: run `ootd migrate`); or the database is unavailable.",
    _RETRY_AFTER,
)
_SIMULATOR_CATALOG_503 = _error(
    "A database without the simulator's functions or grants (not_migrated: run `ootd migrate`), or the database "
    "is unavailable.",
    _RETRY_AFTER,
)


#: A profile's learned affinity: 0 to 1e6, the users check's bound (ootd._weight_limits().largest).
_AFFINITY: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1e6}


def _weight(low: float, inclusive: bool, high: float) -> dict[str, Any]:
    """A what-if weight: its range (ootd._weight_ranges), and 0 or at least 1e-12 (api/simulator.py MIN_WEIGHT)."""
    some = {"type": "number", "minimum": max(low, 1e-12), "maximum": high}
    return {"anyOf": [{"const": 0}, some]} if inclusive and low == 0 else some


_SIMULATION_VARIANT: dict[str, dict[str, Any]] = {
    "what_if": {
        "type": "null",
        "description": "Always null: a what-if profile names no user, so no experiment variant; the weights in force.",
    },
    "user": {
        "type": ["string", "null"],
        "examples": ["more_cosine"],
        "description": "The user's variant of the running experiment, whose weights the ranking starts from (as "
        "the feed's); null when no experiment runs.",
    },
}


def _simulation(mode: str) -> dict[str, Any]:
    """The ranking: what ootd.feed_explain shows, for a what-if profile or a user's own."""
    properties: dict[str, Any] = {"mode": {"const": mode}}
    if mode == "user":
        properties["user_id"] = dict(_ID)
    properties.update(
        {
            "headline": {"type": "string", "examples": ["A breezy minimalist look for tonight in Torrance"]},
            "cluster_id": {"type": "string", "description": "The pool served.", "examples": ["20260420_Minimal_Sunny"]},
            "pool_date": {"type": "string", "format": "date"},
            "relaxed_rules": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Veto entries relaxed to fill the feed, e.g. disliked_categories:Dress.",
            },
            "variant": _SIMULATION_VARIANT[mode],
            "priority_daypart": {
                "enum": ["Daytime", "NightOut", None],
                "description": "The daypart that has priority at the local time (from 15:00: NightOut).",
            },
            "at": {"type": "string", "format": "date-time", "description": "The instant simulated, in UTC."},
            "local_time": {
                "type": "string",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$",
                "examples": ["2026-04-20 14:59"],
                "description": "That instant on the city's wall clock.",
            },
            "city": {"type": "string", "description": "The profile's city, as the database spells it."},
            "timezone": {"type": "string", "examples": ["America/Los_Angeles"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20},
            "items": {
                "type": "array",
                "minItems": 1,
                "description": "Every candidate: ranked ones by rank, then the vetoed ones (rank null).",
                "items": {"$ref": "#/components/schemas/SimulationItem"},
            },
        }
    )
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def _user_param() -> dict[str, Any]:
    return {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "The user (the token's subject).",
        "schema": dict(_ID),
    }


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    from api import __doc__ as summary
    from api.simulator import ITEM_KEYS, PAGE_HEADERS

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ootd",
            "version": "1.0.0",
            "summary": (summary or "").strip(),
            "description": "Outfit-of-the-day feeds served from PostgreSQL. Every error is "
            '`{"error": {"code", "message"}}`. Tokens: `ootd token <user id>`.',
        },
        "paths": {
            "/v1/users/{user_id}/feed": {
                "get": {
                    "operationId": "getFeed",
                    "summary": "The user's outfit-of-the-day feed (ootd.feed).",
                    "security": [{"bearerAuth": []}],
                    "parameters": [
                        _user_param(),
                        {
                            "name": "at",
                            "in": "query",
                            "required": False,
                            "description": "The moment to serve, ISO 8601 with a UTC offset (default: now). "
                            "The offset matters: it decides the user's local date and daypart.",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "Outfits to return.",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
                        },
                        {
                            "name": "Ootd-Min-LSN",
                            "in": "header",
                            "required": False,
                            "description": "Read-your-writes with read replicas: the Ootd-Min-LSN a like or "
                            "unlike returned; the feed then comes from a replica that has replayed it, or from "
                            "the primary. The ootd_min_lsn cookie does the same. Malformed (either): 400.",
                            "schema": {"type": "string", "pattern": _LSN_PATTERN},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The feed.",
                            "headers": _SERVED_BY,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feed"}}},
                        },
                        "400": _error("Bad user_id, at, limit or Ootd-Min-LSN (code invalid_min_lsn)."),
                        **_AUTH_ERRORS,
                        "404": _error("Unknown user."),
                        "503": _error(
                            "No outfit pools exist yet (code no_pools), or the database is unavailable.", _RETRY_AFTER
                        ),
                    },
                },
            },
            "/v1/users/{user_id}/likes": {
                "post": {
                    "operationId": "likeOutfit",
                    "summary": "Like an outfit (ootd.like); the profile learns in the same transaction.",
                    "security": [{"bearerAuth": []}],
                    "parameters": [_user_param()],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LikeRequest"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "A new like.",
                            "headers": {
                                "Location": {
                                    "description": "The like's URL (DELETE it to unlike).",
                                    "schema": {"type": "string"},
                                },
                                **_WRITE_LSN,
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Like"}}},
                        },
                        "200": {
                            "description": "Already liked; nothing changed.",
                            "headers": _WRITE_LSN,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Like"}}},
                        },
                        "400": _error("Bad user_id, malformed JSON, missing or non-integer outfit_id."),
                        **_AUTH_ERRORS,
                        "404": _error("Unknown user or outfit."),
                        "413": _error("Body larger than 4096 bytes."),
                        "415": _error("Content-Type is not application/json."),
                        "503": _UNAVAILABLE,
                    },
                },
            },
            "/v1/users/{user_id}/likes/{outfit_id}": {
                "delete": {
                    "operationId": "unlikeOutfit",
                    "summary": "Take a like back (ootd.unlike); idempotent.",
                    "security": [{"bearerAuth": []}],
                    "parameters": [
                        _user_param(),
                        {"name": "outfit_id", "in": "path", "required": True, "schema": dict(_ID)},
                    ],
                    "responses": {
                        "200": {
                            "description": "`removed` says whether there was a like to take back.",
                            "headers": _WRITE_LSN,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unlike"}}},
                        },
                        "400": _error("Bad user_id or outfit_id."),
                        **_AUTH_ERRORS,
                        "404": _error("Unknown user or outfit."),
                        "503": _UNAVAILABLE,
                    },
                },
            },
            "/simulator": {
                "get": {
                    "operationId": "simulatorPage",
                    "summary": "The Last-Mile Pipeline simulator's page (docs/simulator.md); it reads the routes below.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The page, under a Content-Security-Policy allowing only this origin's "
                            "script and style files.",
                            "headers": {
                                name: {"required": True, "schema": {"const": value}}
                                for name, value in PAGE_HEADERS.items()
                            },
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        "503": _SIMULATOR_CATALOG_503,
                    },
                },
            },
            "/v1/simulate": {
                "post": {
                    "operationId": "simulateWhatIf",
                    "summary": "Rank a pool for a what-if profile (ootd.simulate): no token, no user read.",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/WhatIfSimulationRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The ranking.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/WhatIfSimulation"}}
                            },
                        },
                        "400": _error(
                            _SIMULATION_400 + " A missing or bad profile (invalid_profile; one naming a user_id too), "
                            "or one naming a city, archetype, category or color the database does not know, or a "
                            "category both liked and disliked (invalid_parameter)."
                        ),
                        "404": _error("Unknown pool (cluster_id)."),
                        "413": _error("Body larger than 4096 bytes."),
                        "415": _error("Content-Type is not application/json."),
                        "503": _SIMULATION_503,
                    },
                },
            },
            "/v1/users/{user_id}/simulate": {
                "post": {
                    "operationId": "simulateUser",
                    "summary": "Rank a pool for the user's own profile (ootd.simulate(ootd.user_profile(id))): "
                    "with no weights and no cluster_id, exactly the user's feed.",
                    "security": [{"bearerAuth": []}],
                    "parameters": [_user_param()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/UserSimulationRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The ranking (no taste vector, no likes: they stay in the database).",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/UserSimulation"}}
                            },
                        },
                        "400": _error("Bad user_id. " + _SIMULATION_400),
                        **_AUTH_ERRORS,
                        "404": _error("Unknown user or pool (cluster_id)."),
                        "413": _error("Body larger than 4096 bytes."),
                        "415": _error("Content-Type is not application/json."),
                        "503": _SIMULATION_503,
                    },
                },
            },
            "/v1/pools": {
                "get": {
                    "operationId": "listPools",
                    "summary": "The pools of a date, for the simulator's picker (ootd.pool_catalog).",
                    "security": [],
                    "parameters": [
                        {
                            "name": "date",
                            "in": "query",
                            "required": False,
                            "description": "A pool date (default: the latest one).",
                            "schema": {"type": "string", "format": "date"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The pools (none for a date without pools).",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pools"}}},
                        },
                        "400": _error("A bad date (invalid_date) or an unknown query parameter (invalid_parameter)."),
                        "503": _SIMULATOR_CATALOG_503,
                    },
                },
            },
            "/v1/llm-calls": {
                "get": {
                    "operationId": "countLlmCalls",
                    "summary": "LLM requests in the ledger since an instant (ootd.llm_calls_since); ranking "
                    "makes none.",
                    "security": [],
                    "parameters": [
                        {
                            "name": "since",
                            "in": "query",
                            "required": True,
                            "description": "ISO 8601 with a UTC offset.",
                            "schema": {"type": "string", "format": "date-time"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The count.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LlmCalls"}}},
                        },
                        "400": _error(
                            "since missing (invalid_since) or bad (invalid_at), or an unknown query parameter "
                            "(invalid_parameter)."
                        ),
                        "503": _SIMULATOR_CATALOG_503,
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers (no database call).",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Alive.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "additionalProperties": False,
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                },
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the database answers and today's pools exist (ootd.serving_status).",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}},
                        },
                        "503": _error(
                            "No pools for today's UTC date (code not_ready), or the database is "
                            "unavailable (database_unavailable).",
                            _RETRY_AFTER,
                        ),
                    },
                },
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of every worker.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 JWT naming one user (`sub`), with `exp`; `ootd token <id>` prints one.",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "additionalProperties": False,
                            "properties": {
                                "code": {"type": "string", "examples": ["invalid_limit"]},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "FeedItem": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["rank", "outfit_id", "title", "category", "color", "daypart", "score"],
                    "properties": {
                        "rank": {"type": "integer", "minimum": 1},
                        "outfit_id": dict(_ID),
                        "title": {"type": "string"},
                        "category": {"type": "string"},
                        "color": {"type": "string"},
                        "daypart": {"enum": ["Daytime", "NightOut"]},
                        "score": {"type": "number"},
                    },
                },
                "Feed": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["user_id", "cluster_id", "headline", "daypart", "relaxed_rules", "variant", "items"],
                    "properties": {
                        "user_id": dict(_ID),
                        "cluster_id": {"type": "string", "examples": ["20260420_Minimal_Sunny"]},
                        "headline": {
                            "type": "string",
                            "examples": ["A breezy minimalist look for tonight in Torrance"],
                        },
                        "daypart": {
                            "enum": ["Daytime", "NightOut"],
                            "description": "The daypart the feed puts first (that of its first item).",
                        },
                        "relaxed_rules": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Veto entries relaxed to fill the feed, e.g. disliked_categories:Dress.",
                        },
                        "variant": {
                            "type": ["string", "null"],
                            "examples": ["more_cosine"],
                            "description": "The user's variant of the running A/B experiment on the scoring "
                            "weights (the weights that ranked this feed); null when no experiment runs.",
                        },
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 20,
                            "items": {"$ref": "#/components/schemas/FeedItem"},
                        },
                    },
                },
                "LikeRequest": {
                    "type": "object",
                    "required": ["outfit_id"],
                    "additionalProperties": False,
                    "properties": {"outfit_id": dict(_ID)},
                },
                "Like": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["user_id", "outfit_id", "liked", "created"],
                    "properties": {
                        "user_id": dict(_ID),
                        "outfit_id": dict(_ID),
                        "liked": {"const": True},
                        "created": {"type": "boolean"},
                    },
                },
                "Unlike": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["user_id", "outfit_id", "liked", "removed"],
                    "properties": {
                        "user_id": dict(_ID),
                        "outfit_id": dict(_ID),
                        "liked": {"const": False},
                        "removed": {"type": "boolean"},
                    },
                },
                "Ready": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "status",
                        "pool_date",
                        "pools",
                        "cached_pools",
                        "fallback_pools",
                        "standby",
                        "replay_lag_s",
                    ],
                    "properties": {
                        "status": {"const": "ready"},
                        "pool_date": {"type": "string", "format": "date"},
                        "pools": {"type": "integer", "minimum": 1},
                        "cached_pools": {"type": "integer", "minimum": 0},
                        "fallback_pools": {"type": "integer", "minimum": 0},
                        "standby": {
                            "type": "boolean",
                            "description": "The database is a hot standby (read-only; feeds read the durable pools).",
                        },
                        "replay_lag_s": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "description": "On a standby: seconds since the last replayed commit, "
                            "0 when all WAL received is replayed. Null on a primary.",
                        },
                        "replicas": {
                            "type": "array",
                            "description": "Only with read replicas (DATABASE_READ_URLS), each checked now. "
                            "A replica down or lagging does not make the API unready: the primary serves.",
                            "items": {"$ref": "#/components/schemas/Replica"},
                        },
                    },
                },
                "WhatIfSimulationRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["profile"],
                    "properties": {"profile": {"$ref": "#/components/schemas/Profile"}, **_SIMULATION_FIELDS},
                    "allOf": _SIMULATION_RULES,
                },
                "UserSimulationRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": _SIMULATION_FIELDS,
                    "allOf": _SIMULATION_RULES,
                },
                "Profile": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["city"],
                    "description": "A what-if profile (the shape of ootd.user_profile, without user_id). Every "
                    "name must be in the database's vocabulary (GET /simulator lists them), else a 400.",
                    "properties": {
                        "city": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 100,
                            "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
                            "examples": ["Torrance"],
                            "description": "A city the database knows (any case); its IANA zone sets local time.",
                        },
                        "style_dna": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "archetype": {"type": "string", "examples": ["Minimal"]},
                                "preferred_colors": _NAMES,
                                "category_affinity": {
                                    "type": "object",
                                    "additionalProperties": _AFFINITY,
                                },
                                "color_affinity": {
                                    "type": "object",
                                    "additionalProperties": _AFFINITY,
                                },
                                "archetype_affinity": {
                                    "type": "object",
                                    "additionalProperties": _AFFINITY,
                                    "description": "Archetype -> affinity (learned from likes). Without it, the "
                                    "stated archetype counts 1 and every other 0.",
                                },
                                "vibe": {"type": "number", "minimum": 0, "maximum": 1},
                                "trend": {"type": "number", "minimum": 0, "maximum": 1},
                                "dare": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        },
                        "style_rules": {
                            "type": "object",
                            "additionalProperties": False,
                            "description": "A category may not be both liked and disliked.",
                            "properties": {
                                "liked_categories": _NAMES,
                                "disliked_categories": _NAMES,
                                "disliked_colors": _NAMES,
                            },
                        },
                        "taste": {
                            "type": ["array", "null"],
                            "minItems": 32,
                            "maxItems": 32,
                            "items": {"type": "number", "minimum": -1e6, "maximum": 1e6},
                            "contains": {"anyOf": [{"minimum": 1e-6}, {"maximum": -1e-6}]},
                            "description": "The taste embedding: 32 numbers, not all (nearly) zero. Null: none.",
                        },
                        "liked_outfits": {
                            "type": "array",
                            "maxItems": 200,
                            "items": dict(_ID),
                            "description": "Outfits this profile liked (penalised by liked_decay).",
                        },
                    },
                },
                "Weights": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "Scoring weights replaced for this call only (ootd.weight_catalog has their "
                    "values in force and ranges); never written. A weight is 0 or between 1e-12 and 1e6 in size "
                    "(past those the ranking's products overflow or underflow).",
                    "properties": {
                        "preferred_color": _weight(0, False, 1e6),
                        "liked_category": _weight(0, False, 1e6),
                        "category_affinity": _weight(0, True, 1e6),
                        "cosine": _weight(0, True, 1e6),
                        "daypart_priority": _weight(0, True, 1e6),
                        "liked_decay": _weight(0, True, 1),
                        "jitter": _weight(0, True, 1e-6),
                        "archetype": _weight(0, True, 1e6),
                    },
                },
                "SimulationItem": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": list(ITEM_KEYS),
                    "properties": {
                        "rank": {"type": ["integer", "null"], "minimum": 1, "description": "Null: vetoed."},
                        "outfit_id": dict(_ID),
                        "title": {"type": "string"},
                        "category": {"type": "string"},
                        "color": {"type": "string"},
                        "daypart": {"enum": ["Daytime", "NightOut"]},
                        "vetoed_by": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The rules that veto it, e.g. disliked_categories:Dress.",
                        },
                        "priority": {"type": "boolean", "description": "Of the daypart that has priority."},
                        "color_boost": {"type": "number"},
                        "category_boost": {"type": "number"},
                        "affinity_boost": {"type": "number"},
                        "liked_penalty": {"type": "number"},
                        "cosine": {"type": "number"},
                        "daypart_bonus": {"type": "number"},
                        "jitter": {"type": "number"},
                        "score": {"type": "number"},
                        "source": {"enum": ["cache", "durable"], "description": "Where the row was read."},
                        "drawn_from": {"type": "string", "description": "The pool (cluster) holding it."},
                        "archetype_boost": {
                            "type": "number",
                            "description": "The archetype multiplier: 1 + archetype x ln(1 + the profile's affinity "
                            "to the archetype of the pool it was drawn from).",
                        },
                    },
                },
                "WhatIfSimulation": _simulation("what_if"),
                "UserSimulation": _simulation("user"),
                "Pools": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["pool_date", "pools"],
                    "properties": {
                        "pool_date": {
                            "type": ["string", "null"],
                            "format": "date",
                            "description": "The date asked, or the latest; null when no date was asked and no "
                            "pool exists.",
                        },
                        "pools": {"type": "array", "items": {"$ref": "#/components/schemas/Pool"}},
                    },
                },
                "Pool": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["pool_date", "cluster_id", "archetype", "weather", "members"],
                    "properties": {
                        "pool_date": {"type": "string", "format": "date"},
                        "cluster_id": {"type": "string", "examples": ["20260420_Minimal_Sunny"]},
                        "archetype": {"type": "string"},
                        "weather": {"type": "string"},
                        "members": {"type": "integer", "minimum": 0, "description": "Users in the cluster."},
                    },
                },
                "LlmCalls": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["since", "calls"],
                    "properties": {
                        "since": {"type": "string", "format": "date-time", "description": "In UTC."},
                        "calls": {"type": "integer", "minimum": 0},
                    },
                },
                "Replica": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "state", "lag_s", "replay_lsn", "feeds", "detail"],
                    "properties": {
                        "name": {"type": "string", "examples": ["replica-1"]},
                        "state": {
                            "enum": ["up", "down", "lagging"],
                            "description": "lagging: replay lag past OOTD_REPLICA_MAX_LAG_S. Feeds skip all but up.",
                        },
                        "lag_s": {"type": ["number", "null"], "minimum": 0},
                        "replay_lsn": {"type": ["string", "null"], "pattern": _LSN_PATTERN},
                        "feeds": {"type": "integer", "minimum": 0, "description": "Feeds it served (all workers)."},
                        "detail": {"type": ["string", "null"], "description": "Why it is not up."},
                    },
                },
            },
        },
    }
