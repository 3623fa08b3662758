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
                    "required": ["user_id", "cluster_id", "headline", "daypart", "relaxed_rules", "items"],
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
