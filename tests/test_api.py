"""The HTTP API (Flask test client) against a real database: every status code, auth, role, metrics."""

from __future__ import annotations

import io
import json
import logging
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Iterator

import jwt
import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from api.app import create_app
from api.auth import LEEWAY_S, Authenticator, issue_token
from api.errors import ApiError
from batch.nightly import NightlyConfig, run_nightly
from db.server import EmbeddedServer
from tests.conftest import (
    SEEDED_TEMPLATE,
    SERVED_DAY,
    SERVED_TEMPLATE,
    TEST_SETTINGS,
    create_database,
    drop_database,
)

NOW = int(time.time())
SECRET = "test-secret-" + "s" * 60  # >= 64 bytes, so even the HS512 forgery below is warning-free
NOON = f"{SERVED_DAY}T12:00:00Z"
UNKNOWN_USER = 10_001  # the seed has users 1..10,000


def bearer(user_id: int, secret: str = SECRET, **kwargs) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user_id, secret, **kwargs)}"}


def error_of(response) -> dict:
    body = response.get_json()
    assert response.mimetype == "application/json", response.data
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


@pytest.fixture(scope="module")
def served_db(pg_server, served_template):
    """10,000 users with the pools of SERVED_DAY and of today (so /readyz is ready), shared by this module."""
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    run_nightly(url, NightlyConfig(day=datetime.now(timezone.utc).date(), llm="offline", serve_ahead=True))
    yield url
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def app(served_db):
    app = create_app(served_db, SECRET, pool_max=2)
    yield app
    app.extensions["ootd"].db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def admin(served_db):
    with psycopg.connect(served_db, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def empty_app(pg_server, seeded_template):
    """Users but no pools at all."""
    name = create_database(pg_server, SEEDED_TEMPLATE)
    app = create_app(pg_server.dsn(name), SECRET, pool_max=1)
    yield app
    app.extensions["ootd"].db.close()
    drop_database(pg_server, name)


def veto_all_user(admin) -> int:
    return admin.execute(
        "SELECT id FROM ootd.users WHERE jsonb_array_length(style_rules->'disliked_categories') "
        "= (SELECT count(*) FROM ootd.categories) ORDER BY id LIMIT 1"
    ).fetchone()[0]


# -------------------------------------------------------------------- feed --
def test_feed_returns_the_users_ranked_outfits_and_headline(client, admin):
    response = client.get(f"/v1/users/7/feed?at={NOON}", headers=bearer(7))
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["user_id", "cluster_id", "headline", "daypart", "relaxed_rules", "variant", "items"]
    rows = admin.execute("SELECT * FROM ootd.feed(7, %s)", (NOON,)).fetchall()
    assert body["user_id"] == 7
    assert body["variant"] is None and rows[0][10] is None  # no experiment runs
    assert body["cluster_id"] == rows[0][8] and body["cluster_id"].startswith("20260420_")
    assert body["headline"] == rows[0][7]
    assert body["daypart"] == body["items"][0]["daypart"]
    assert [
        (i["rank"], i["outfit_id"], i["title"], i["category"], i["color"], i["daypart"], i["score"])
        for i in body["items"]
    ] == [r[:7] for r in rows]


def test_feed_limit_and_default_of_three(client):
    assert len(client.get(f"/v1/users/7/feed?at={NOON}", headers=bearer(7)).get_json()["items"]) == 3
    assert len(client.get(f"/v1/users/7/feed?at={NOON}&limit=20", headers=bearer(7)).get_json()["items"]) == 20
    assert len(client.get("/v1/users/7/feed?limit=1", headers=bearer(7)).get_json()["items"]) == 1


def test_feed_at_offset_decides_the_local_time(client, admin):
    """The same wall-clock time at two offsets is two instants: the offset is never dropped."""
    user_id = admin.execute("SELECT id FROM ootd.users WHERE timezone = 'Asia/Kolkata' ORDER BY id LIMIT 1").fetchone()[
        0
    ]
    morning = client.get(f"/v1/users/{user_id}/feed?at=2026-04-20T09:00:00%2B05:30", headers=bearer(user_id))
    evening = client.get(f"/v1/users/{user_id}/feed?at=2026-04-20T09:00:00-03:00", headers=bearer(user_id))
    assert "morning" in morning.get_json()["headline"]  # 09:00 in Mumbai
    assert "tonight" in evening.get_json()["headline"]  # 12:00Z = 17:30 in Mumbai: NightOut items
    # an unencoded "+" arrives as a space: still the +05:30 offset, not a naive time
    unencoded = client.get(f"/v1/users/{user_id}/feed?at=2026-04-20T09:00:00+05:30", headers=bearer(user_id))
    assert unencoded.get_json() == morning.get_json()


def test_feed_relaxed_rules_for_a_user_who_vetoes_everything(client, admin):
    user_id = veto_all_user(admin)
    body = client.get(f"/v1/users/{user_id}/feed?at={NOON}", headers=bearer(user_id)).get_json()
    assert body["relaxed_rules"] and all(r.startswith("disliked_categories:") for r in body["relaxed_rules"])


# ------------------------------------------------------------- experiments --
COSINE_UP = {"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}
EXPERIMENT_USERS = range(1, 21)


@contextmanager
def running_experiment(admin, name: str, variants: dict = COSINE_UP) -> Iterator[None]:
    """An experiment running for the block; ended on the way out unless the block ended it."""
    admin.execute("SELECT * FROM ootd.start_experiment(%s, %s)", (name, Jsonb(variants)))
    try:
        yield
    finally:
        admin.execute(
            "SELECT ootd.end_experiment(name) FROM ootd.experiments WHERE name = %s AND ended_at IS NULL", (name,)
        )


def served_variants(client) -> dict[int, str | None]:
    variants = {}
    for user_id in EXPERIMENT_USERS:
        response = client.get(f"/v1/users/{user_id}/feed?at={NOON}", headers=bearer(user_id))
        assert response.status_code == 200, response.data
        variants[user_id] = response.get_json()["variant"]
    return variants


def test_feed_reports_the_user_s_experiment_variant_and_null_when_none_runs(client, admin):
    assert served_variants(client) == dict.fromkeys(EXPERIMENT_USERS)  # no experiment: null for everyone
    with running_experiment(admin, "api_cosine_up"):
        assigned = {
            user_id: admin.execute("SELECT experiment, variant FROM ootd.experiment_of(%s)", (user_id,)).fetchone()
            for user_id in EXPERIMENT_USERS
        }
        assert {experiment for experiment, _ in assigned.values()} == {"api_cosine_up"}
        served = served_variants(client)
        assert served == {user_id: variant for user_id, (_, variant) in assigned.items()}
        assert set(served.values()) == {"control", "more_cosine"}  # both halves among 20 users

        admin.execute("SELECT * FROM ootd.end_experiment('api_cosine_up')")
        assert admin.execute("SELECT count(*) FROM ootd.experiment_of(1)").fetchone()[0] == 0
        assert served_variants(client) == dict.fromkeys(EXPERIMENT_USERS)  # ended: null again


def test_feed_under_an_experiment_is_the_variant_s_ranking(client, admin):
    """The feed served is ootd.feed's under the variant's weights: the control's is unchanged, the other moves."""
    before = {u: client.get(f"/v1/users/{u}/feed?at={NOON}", headers=bearer(u)).get_json() for u in EXPERIMENT_USERS}
    seen = set()
    with running_experiment(admin, "api_cosine_scores"):
        for user_id in EXPERIMENT_USERS:
            body = client.get(f"/v1/users/{user_id}/feed?at={NOON}", headers=bearer(user_id)).get_json()
            rows = admin.execute("SELECT * FROM ootd.feed(%s, %s)", (user_id, NOON)).fetchall()
            assert body["variant"] == rows[0][10]
            assert [(i["outfit_id"], i["score"]) for i in body["items"]] == [(r[1], r[6]) for r in rows]
            seen.add(body["variant"])
            if body["variant"] == "control":
                assert body == {**before[user_id], "variant": "control"}
            else:  # every seeded user has a taste vector: a larger cosine weight moves the scores
                assert body["variant"] == "more_cosine"
                assert [i["score"] for i in body["items"]] != [i["score"] for i in before[user_id]["items"]]
    assert seen == {"control", "more_cosine"}


@pytest.mark.parametrize(
    "at",
    [
        "2026-04-20T12:00:00",  # naive: the offset matters, so it is required
        "2026-04-20",  # a date is not a moment
        "yesterday",
        "",
        "2026-13-01T00:00:00Z",
        "2026-04-20T25:00:00Z",
        "0001-01-01T00:00:00%2B01:00",  # before year 1 once in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 once in UTC
    ],
)
def test_feed_bad_at_is_400(client, at):
    response = client.get(f"/v1/users/7/feed?at={at}", headers=bearer(7))
    assert response.status_code == 400, response.data
    assert error_of(response)["code"] == "invalid_at"


@pytest.mark.parametrize(
    "at",
    ["2026-04-20t12:00:00z", "2026-04-20T23:59:60Z", "2026-04-20T12:00:00.123456789Z", "2026-04-20T12:00:00-23:59"],
)
def test_feed_accepts_every_rfc3339_form(client, at):
    assert client.get(f"/v1/users/7/feed?at={at}", headers=bearer(7)).status_code == 200


@pytest.mark.parametrize("limit", ["0", "21", "-1", "1.5", "abc", "", "99999999999999999999"])
def test_feed_bad_limit_is_400(client, limit):
    response = client.get(f"/v1/users/7/feed?limit={limit}", headers=bearer(7))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_limit"


@pytest.mark.parametrize("user_id", ["abc", "0", "-7", "7.0", "99999999999999999999", "9223372036854775808"])
def test_non_integer_or_out_of_range_user_id_is_400(client, user_id):
    response = client.get(f"/v1/users/{user_id}/feed", headers=bearer(7))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_user_id"


def test_unknown_user_is_404(client):
    response = client.get(f"/v1/users/{UNKNOWN_USER}/feed", headers=bearer(UNKNOWN_USER))
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": f"unknown user {UNKNOWN_USER}"}


def test_feed_without_any_pool_is_503(empty_app):
    response = empty_app.test_client().get("/v1/users/7/feed", headers=bearer(7))
    assert response.status_code == 503
    assert error_of(response)["code"] == "no_pools"
    assert response.headers["Retry-After"] == "60"


# -------------------------------------------------------------------- auth --
def test_missing_token_is_401_with_a_bearer_challenge(client):
    response = client.get("/v1/users/7/feed")
    assert response.status_code == 401
    assert error_of(response) == {"code": "unauthorized", "message": "missing bearer token"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ootd"'


@pytest.mark.parametrize(
    "header, message",
    [
        ("Bearer", "expected 'Authorization: Bearer <token>'"),
        ("Basic dXNlcjpwYXNz", "expected 'Authorization: Bearer <token>'"),
        ("Bearer not-a-jwt", "malformed token"),
        (f"Bearer {issue_token(7, 'another-secret-' + 'x' * 40)}", "token signature is invalid"),  # forged
        (f"Bearer {issue_token(7, SECRET, ttl_s=60, now=time.time() - 3600)}", "token expired"),
        (
            f"Bearer {jwt.encode({'sub': '7', 'iat': int(time.time()), 'iss': 'ootd', 'gen': 0}, SECRET)}",
            "token lacks the 'exp' claim",
        ),
        (
            f"Bearer {jwt.encode({'sub': '7', 'iat': 1, 'exp': 2**40, 'iss': 'ootd'}, SECRET, algorithm='HS512')}",
            "malformed token",
        ),  # algorithm not allowed
        (
            f"Bearer {jwt.encode({'sub': '7', 'iat': 1, 'exp': 2**40, 'iss': 'ootd'}, None, algorithm='none')}",
            "malformed token",
        ),  # unsigned
        (
            # valid for a day from collection: the parameters are made long before the test runs
            f"Bearer {jwt.encode({'sub': 'seven', 'iat': NOW, 'exp': NOW + 86400, 'iss': 'ootd', 'gen': 0}, SECRET)}",
            "token subject is not a user id",
        ),
        (
            f"Bearer {jwt.encode({'sub': '7', 'iat': 1, 'exp': 2**40, 'iss': 'elsewhere', 'gen': 0}, SECRET)}",
            "malformed token",
        ),
    ],
)
def test_bad_tokens_are_401(client, header, message):
    response = client.get("/v1/users/7/feed", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response) == {"code": "unauthorized", "message": message}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="ootd", error="invalid_')


def test_a_remembered_token_still_expires():
    """Verified tokens are cached per worker; the cache must not outlive the token's exp."""
    auth = Authenticator(SECRET)
    expires = int(time.time()) - LEEWAY_S + 2  # past, but inside the leeway for 1 to 2 s
    token = jwt.encode({"sub": "7", "iat": expires - 60, "exp": expires, "iss": "ootd", "gen": 0}, SECRET)
    assert auth.user_id(f"Bearer {token}") == 7  # verified and remembered
    time.sleep(max(0.0, expires + LEEWAY_S + 0.05 - time.time()))
    with pytest.raises(ApiError) as caught:
        auth.user_id(f"Bearer {token}")
    assert (caught.value.status, caught.value.message) == (401, "token expired")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(ApiError):
        auth.user_id(f"Bearer {forged}")  # a cache keyed by the whole token: no match


def test_another_users_token_is_403_on_every_route(client):
    other = bearer(8)
    assert client.get("/v1/users/7/feed", headers=other).status_code == 403
    assert client.post("/v1/users/7/likes", json={"outfit_id": 1}, headers=other).status_code == 403
    response = client.delete("/v1/users/7/likes/1", headers=other)
    assert response.status_code == 403
    assert error_of(response) == {"code": "forbidden", "message": "this token is for user 8, not user 7"}


# ------------------------------------------------------------------- likes --
def test_like_is_201_then_200_and_unlike_removes_it(client, admin):
    outfit_id = client.get(f"/v1/users/11/feed?at={NOON}", headers=bearer(11)).get_json()["items"][0]["outfit_id"]
    first = client.post("/v1/users/11/likes", json={"outfit_id": outfit_id}, headers=bearer(11))
    assert first.status_code == 201
    assert first.get_json() == {"user_id": 11, "outfit_id": outfit_id, "liked": True, "created": True}
    assert first.headers["Location"] == f"/v1/users/11/likes/{outfit_id}"
    again = client.post("/v1/users/11/likes", json={"outfit_id": outfit_id}, headers=bearer(11))
    assert again.status_code == 200 and again.get_json()["created"] is False
    assert admin.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 11").fetchone()[0] == 1

    removed = client.delete(f"/v1/users/11/likes/{outfit_id}", headers=bearer(11))
    assert removed.status_code == 200
    assert removed.get_json() == {"user_id": 11, "outfit_id": outfit_id, "liked": False, "removed": True}
    absent = client.delete(f"/v1/users/11/likes/{outfit_id}", headers=bearer(11))
    assert absent.status_code == 200 and absent.get_json()["removed"] is False
    assert admin.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 11").fetchone()[0] == 0


def test_like_of_unknown_outfit_or_user_is_404_and_changes_nothing(client, admin):
    unknown_outfit = admin.execute("SELECT max(id) + 1 FROM ootd.outfits").fetchone()[0]
    response = client.post("/v1/users/12/likes", json={"outfit_id": unknown_outfit}, headers=bearer(12))
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": f"unknown outfit {unknown_outfit}"}
    response = client.post(f"/v1/users/{UNKNOWN_USER}/likes", json={"outfit_id": 1}, headers=bearer(UNKNOWN_USER))
    assert response.status_code == 404
    assert error_of(response)["message"] == f"unknown user {UNKNOWN_USER}"
    response = client.delete(f"/v1/users/12/likes/{unknown_outfit}", headers=bearer(12))
    assert response.status_code == 404
    assert admin.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 12").fetchone()[0] == 0


@pytest.mark.parametrize(
    "body, code",
    [
        ("{", "invalid_json"),
        ("", "invalid_json"),
        ('{"outfit_id": 1', "invalid_json"),
        ("\xff", "invalid_json"),
        ("[1]", "invalid_body"),
        ('"1"', "invalid_body"),
        ("{}", "invalid_body"),  # missing outfit_id
        ('{"outfit_id": 1, "extra": 2}', "invalid_body"),
        ('{"outfit_id": "1"}', "invalid_outfit_id"),
        ('{"outfit_id": 1.5}', "invalid_outfit_id"),
        ('{"outfit_id": 1e300}', "invalid_outfit_id"),
        ('{"outfit_id": true}', "invalid_outfit_id"),
        ('{"outfit_id": null}', "invalid_outfit_id"),
        ('{"outfit_id": 0}', "invalid_outfit_id"),
        ('{"outfit_id": 9223372036854775808}', "invalid_outfit_id"),
        ('{"outfit_id": NaN}', "invalid_outfit_id"),
        ('{"outfit_id": ' + "9" * 4000 + "}", "invalid_outfit_id"),  # fits 4 KiB, far past bigint
    ],
)
def test_bad_like_bodies_are_400(client, body, code):
    response = client.post(
        "/v1/users/7/likes", data=body.encode("latin-1"), content_type="application/json", headers=bearer(7)
    )
    assert response.status_code == 400, response.data
    assert error_of(response)["code"] == code


def test_like_needs_a_json_content_type_415(client):
    for kwargs in (
        {"data": '{"outfit_id": 1}', "content_type": "text/plain"},
        {"data": "outfit_id=1", "content_type": "application/x-www-form-urlencoded"},
        {"data": '{"outfit_id": 1}'},
    ):
        response = client.post("/v1/users/7/likes", headers=bearer(7), **kwargs)
        assert response.status_code == 415
        assert error_of(response)["code"] == "unsupported_media_type"


def test_oversized_like_body_is_413(client):
    body = json.dumps({"outfit_id": 1, "pad": "x" * 5000})
    response = client.post("/v1/users/7/likes", data=body, content_type="application/json", headers=bearer(7))
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_entity_too_large"


def chunked_like(client, user_id: int, body: bytes):
    """A like whose body arrives without Content-Length, as a server that decodes Transfer-Encoding: chunked
    (gunicorn, Werkzeug's) hands it to the app: a terminated stream."""
    return client.post(
        f"/v1/users/{user_id}/likes",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**bearer(user_id), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"outfit_id": 4}' + b" " * 5000 + b"garbage",  # its first 4 KiB are valid JSON
        b'{"outfit_id": 4}' + b" " * (4097 - 16),  # one byte over, valid JSON
        b"x" * (10 << 20),
    ],
    ids=["5000-spaces-then-garbage", "4097-bytes", "10-MiB"],
)
def test_oversized_chunked_like_body_is_413(client, admin, body):
    response = chunked_like(client, 13, body)
    assert response.status_code == 413, response.data
    assert error_of(response) == {"code": "request_entity_too_large", "message": "request body larger than 4096 bytes"}
    assert admin.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 13").fetchone()[0] == 0


def test_chunked_like_body_of_exactly_4_kib_is_accepted(client, admin):
    outfit_id = client.get(f"/v1/users/14/feed?at={NOON}", headers=bearer(14)).get_json()["items"][0]["outfit_id"]
    body = json.dumps({"outfit_id": outfit_id}).encode()
    response = chunked_like(client, 14, body.ljust(4096))
    assert response.status_code == 201, response.data
    assert response.get_json()["outfit_id"] == outfit_id
    assert admin.execute("SELECT count(*) FROM ootd.likes WHERE user_id = 14").fetchone()[0] == 1


def test_unlike_with_a_non_integer_outfit_is_400(client):
    response = client.delete("/v1/users/7/likes/abc", headers=bearer(7))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_outfit_id"


# --------------------------------------------------- routing and plumbing --
def test_unknown_route_is_json_404(client):
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "no route for GET /v1/nope"}


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("put", "/v1/users/7/feed", {"GET", "HEAD"}),
        ("get", "/v1/users/7/likes", {"POST"}),
        ("options", "/v1/users/7/likes/1", {"DELETE"}),
        ("post", "/healthz", {"GET", "HEAD"}),
    ],
)
def test_wrong_method_is_json_405_with_allow(client, method, path, allow):
    response = getattr(client, method)(path, headers=bearer(7))
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == allow


def test_healthz_and_readyz(client, empty_app):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready" and body["pools"] > 0
    assert body["pool_date"] == datetime.now(timezone.utc).date().isoformat()
    assert body["cached_pools"] + body["fallback_pools"] == body["pools"]

    not_ready = empty_app.test_client().get("/readyz")
    assert not_ready.status_code == 503
    assert error_of(not_ready)["code"] == "not_ready"


def test_readyz_is_503_when_the_database_is_unreachable(pg_server):
    app = create_app(pg_server.dsn("no_such_database"), SECRET, pool_max=1, pool_timeout=0.5)
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200  # alive, not ready
        response = client.get("/readyz")
        assert response.status_code == 503
        assert error_of(response)["code"] == "database_unavailable"
        assert client.get("/v1/users/7/feed", headers=bearer(7)).status_code == 503
    finally:
        app.extensions["ootd"].db.close()


def test_openapi_document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v1/users/{user_id}/feed",
        "/v1/users/{user_id}/likes",
        "/v1/users/{user_id}/likes/{outfit_id}",
        "/simulator",
        "/v1/simulate",
        "/v1/users/{user_id}/simulate",
        "/v1/pools",
        "/v1/llm-calls",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }


def test_metrics_count_requests_relaxations_and_fallbacks(client, admin):
    user_id = veto_all_user(admin)
    client.get(f"/v1/users/{user_id}/feed?at={NOON}", headers=bearer(user_id))
    client.get("/v1/users/7/feed?limit=0", headers=bearer(7))
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['ootd_http_requests_total{method="GET",route="/v1/users/<user_id>/feed",status="200"}'] >= 1
    assert samples['ootd_http_requests_total{method="GET",route="/v1/users/<user_id>/feed",status="400"}'] >= 1
    assert samples['ootd_http_request_duration_seconds_count{method="GET",route="/v1/users/<user_id>/feed"}'] >= 2
    assert samples["ootd_feed_relaxed_total"] >= 1
    assert samples["ootd_fallback_pools"] == 0.0 and samples["ootd_pools"] > 0 and samples["ootd_ready"] == 1.0

    # a crash empties the UNLOGGED cache: feeds fall back to durable storage, and the gauge says so
    admin.execute("TRUNCATE ootd.pool_cache")
    try:
        text = client.get("/metrics").get_data(as_text=True)
        assert f"ootd_fallback_pools {samples['ootd_pools']}" in text
    finally:
        admin.execute("SELECT ootd.rehydrate_cache(), ootd.rehydrate_cache(%s)", (SERVED_DAY,))


# -------------------------------------------------------------------- role --
def test_api_connections_act_as_ootd_api_and_cannot_read_tables(app):
    pool = app.extensions["ootd"].db.pool
    with pool.connection() as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == ("ootd_api", "postgres")
        for sql in (
            "SELECT * FROM ootd.users LIMIT 1",
            "SELECT * FROM ootd.likes LIMIT 1",
            "INSERT INTO ootd.likes (user_id, outfit_id) VALUES (1, 1)",
            "SELECT * FROM ootd.feed_explain(1, now())",
        ):
            with pytest.raises(errors.InsufficientPrivilege) as caught:
                conn.execute(sql)
            assert caught.value.sqlstate == "42501"
        # what it may do: the serving functions
        assert conn.execute("SELECT count(*) FROM ootd.feed(1, now())").fetchone() == (3,)


# ---------------------------------------------------------------- restarts --
def test_the_first_request_after_a_database_restart_succeeds(tmp_path_factory):
    """A restart closes every pooled connection while it sits idle; the pool only finds out on use.

    A server of its own (stopping the shared one would disturb every other test), three pooled connections,
    all of them closed by the restart: the first feed after it must not be a 503, nor the ones after.
    """
    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import connect

    server = EmbeddedServer(tmp_path_factory.mktemp("pg-restart"), settings=TEST_SETTINGS)
    url = server.ensure_running()
    try:
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, 100, 42)
        run_nightly(url, NightlyConfig(day=date.fromisoformat(SERVED_DAY), llm="offline"))
        app = create_app(url, SECRET, pool_min=3, pool_max=3)
        try:
            client = app.test_client()
            pool = app.extensions["ootd"].db.pool
            pool.wait()  # all three connections open, so all three are closed by the restart
            assert client.get(f"/v1/users/5/feed?at={NOON}", headers=bearer(5)).status_code == 200
            assert pool.get_stats()["pool_available"] == 3

            server.stop("fast")
            server.restart()

            statuses = [client.get(f"/v1/users/5/feed?at={NOON}", headers=bearer(5)).status_code for _ in range(6)]
            assert statuses == [200] * 6
            with pool.connection() as conn:  # a replacement connection: SET ROLE ran on it too
                assert conn.execute("SELECT current_user").fetchone() == ("ootd_api",)
            outfit_id = client.get(f"/v1/users/5/feed?at={NOON}", headers=bearer(5)).get_json()["items"][0]["outfit_id"]
            server.stop("fast")
            server.restart()
            assert client.post("/v1/users/5/likes", json={"outfit_id": outfit_id}, headers=bearer(5)).status_code == 201
        finally:
            app.extensions["ootd"].db.close()
    finally:
        server.stop("fast")


def test_a_data_error_computing_a_stored_users_feed_is_a_logged_500_not_a_400(client, admin, caplog):
    """Issue 25 item 4: weights stored before their ranges were enforced (written here past
    ootd.start_experiment's checks, as the superuser) overflow some users' scores (22003).  That is the
    server's fault: 500 with the JSON error body and a log line, never a 400 blaming the client."""
    caplog.set_level(logging.ERROR, logger="ootd.api")
    admin.execute("INSERT INTO ootd.experiments (name) VALUES ('x5')")
    admin.execute(
        "INSERT INTO ootd.experiment_variants (experiment, variant, position, control, share, weights) VALUES "
        "('x5', 'control', 1, true, 0.5, '{}'), "
        "('x5', 'b', 2, false, 0.5, '{\"preferred_color\": 1e200, \"liked_category\": 1e200}')"
    )
    try:
        broken = None
        for user_id in range(1, 400):
            try:
                admin.execute("SELECT * FROM ootd.feed(%s, %s)", (user_id, NOON)).fetchall()
            except errors.NumericValueOutOfRange:
                broken = user_id
                break
        assert broken is not None  # about a third of the users overflow (issue 25)
        response = client.get(f"/v1/users/{broken}/feed?at={NOON}", headers=bearer(broken))
        assert response.status_code == 500
        assert error_of(response) == {"code": "internal", "message": f"internal error computing user {broken}'s feed"}
        logged = [r.getMessage() for r in caplog.records if r.name == "ootd.api"]
        assert f"data error computing user {broken}'s feed (SQLSTATE 22003): value out of range: overflow" in logged
        # a client's bad input is still the client's: 400
        assert client.get(f"/v1/users/{broken}/feed?limit=21", headers=bearer(broken)).status_code == 400
    finally:
        admin.execute("DELETE FROM ootd.experiment_variants WHERE experiment = 'x5'")
        admin.execute("DELETE FROM ootd.experiments WHERE name = 'x5'")
    assert client.get(f"/v1/users/{broken}/feed?at={NOON}", headers=bearer(broken)).status_code == 200
