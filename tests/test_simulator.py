"""The simulator's page and JSON routes (Flask test client, real database): rendering, CSP, the two modes
(what-if without a token and reading no user; a real user with that user's token), and bad input as a
JSON 4xx, never a 500.  tests/browser/ drives the same page in a real Chromium."""

from __future__ import annotations

import re
import struct

import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.app import create_app
from api.auth import issue_token
from db import REPO_ROOT
from tests.conftest import SERVED_DAY, SERVED_TEMPLATE, create_database, drop_database

SECRET = "simulator-secret-" + "s" * 60
WHAT_IF = {
    "city": "Torrance",
    "style_dna": {"archetype": "Minimal", "preferred_colors": ["Navy"]},
    "style_rules": {"disliked_categories": ["Dress"], "disliked_colors": [], "liked_categories": []},
}
AFTERNOON = {"date": SERVED_DAY, "time": "14:59"}
EVENING = {"date": SERVED_DAY, "time": "15:00"}
HOSTILE = "<img src=x onerror=alert(1)>\"'&"


def bearer(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user_id, SECRET)}"}


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


@pytest.fixture(scope="module")
def sim_db(pg_server, served_template):
    name = create_database(pg_server, SERVED_TEMPLATE)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def app(sim_db):
    app = create_app(sim_db, SECRET, pool_max=2)
    yield app
    app.extensions["ootd"].db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def admin(sim_db):
    with psycopg.connect(sim_db, autocommit=True) as conn:
        yield conn


def what_if(client, profile=None, **fields):
    return client.post("/v1/simulate", json={"profile": profile or WHAT_IF, **AFTERNOON, **fields})


# -------------------------------------------------------------------- page --
def test_the_page_renders_with_a_strict_content_security_policy(client):
    response = client.get("/simulator")
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = response.get_data(as_text=True)
    # no inline code for the CSP to allow: every script is a file, no style element or attribute
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/simulator/static/simulator.js" defer>']
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    assert re.search(r'<option value="Torrance" selected>', html)
    assert f'value="{SERVED_DAY}"' in html  # the latest pool date is the default
    for name in ("preferred_color", "liked_category", "daypart_priority", "jitter"):
        assert f'data-weight="{name}"' in html


def test_the_page_s_static_files_are_served(client):
    js = client.get("/simulator/static/simulator.js")
    assert js.status_code == 200 and js.mimetype in ("text/javascript", "application/javascript")
    source = js.get_data(as_text=True)
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(", source)
    css = client.get("/simulator/static/simulator.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_every_value_on_the_page_is_escaped(pg_server, served_template):
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT ootd.add_city(%s, 'Europe/Paris', 48.0, 2.0, 'FR', 1)", (HOSTILE,))
        app = create_app(url, SECRET, pool_max=1)
        try:
            html = app.test_client().get("/simulator").get_data(as_text=True)
            body = app.test_client().post("/v1/simulate", json={"profile": {**WHAT_IF, "city": HOSTILE}, **AFTERNOON})
        finally:
            app.extensions["ootd"].db.close()
        assert HOSTILE not in html
        assert "&lt;img src=x onerror=alert(1)&gt;&#34;&#39;&amp;" in html
        assert body.status_code == 200 and body.get_json()["headline"].endswith(f"in {HOSTILE}")  # JSON, as text
    finally:
        drop_database(pg_server, name)


# ---------------------------------------------------------------- what-if --
def test_a_what_if_profile_is_ranked_with_every_component_and_its_vetoes_last(client):
    response = what_if(client)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["mode"] == "what_if" and "user_id" not in body
    assert body["variant"] is None  # a what-if profile names no user: in no experiment
    assert body["city"] == "Torrance" and body["timezone"] == "America/Los_Angeles"
    assert body["local_time"] == f"{SERVED_DAY} 14:59" and body["at"] == f"{SERVED_DAY}T21:59:00Z"
    assert body["priority_daypart"] == "Daytime" and body["headline"].endswith("in Torrance")
    items = body["items"]
    assert len(items) >= 20
    assert all(i["score"] is not None and i["jitter"] is not None for i in items)  # a profile without a user too
    ranked = [i for i in items if i["rank"] is not None]
    vetoed = [i for i in items if i["rank"] is None]
    assert [i["rank"] for i in ranked] == list(range(1, len(ranked) + 1))
    assert items == ranked + vetoed  # vetoed last
    assert vetoed and all(i["category"] == "Dress" and i["vetoed_by"] for i in vetoed)
    assert all(i["category"] != "Dress" for i in ranked)
    assert set(items[0]) == {
        "rank", "outfit_id", "title", "category", "color", "daypart", "vetoed_by", "priority", "color_boost",
        "category_boost", "affinity_boost", "liked_penalty", "cosine", "daypart_bonus", "jitter", "score",
        "source", "drawn_from", "archetype_boost",
    }  # fmt: skip
    navy = [i for i in ranked if i["color"] == "Navy"]
    assert all(i["color_boost"] > 1 for i in navy)


def test_at_15_00_nightout_takes_over_and_the_headline_changes(client):
    afternoon = what_if(client).get_json()
    evening = what_if(client, **EVENING).get_json()
    assert afternoon["items"][0]["daypart"] == "Daytime" and evening["items"][0]["daypart"] == "NightOut"
    assert evening["priority_daypart"] == "NightOut"
    assert afternoon["headline"] != evening["headline"] and "tonight" in evening["headline"]


def test_weights_change_the_order_for_this_call_only(client, admin):
    stored = admin.execute("SELECT to_jsonb(w) - 'updated_at' FROM ootd.scoring_weights w").fetchone()[0]
    # a preferred color that the served pool's priority daypart holds low in the ranking: its boost
    # lifts it; the what-if weight turning the boost into a penalty must sink it again
    items = what_if(client).get_json()["items"]
    daytime = [i for i in items if i["daypart"] == "Daytime" and i["color"] != "Navy"]
    color = daytime[-1]["color"]
    profile = {**WHAT_IF, "style_dna": {"archetype": "Minimal", "preferred_colors": [color]}}
    base = [i["outfit_id"] for i in what_if(client, profile).get_json()["items"]]
    changed = what_if(client, profile, weights={"preferred_color": 0.5}).get_json()["items"]
    assert [i["outfit_id"] for i in changed] != base
    assert all(i["color_boost"] == 0.5 for i in changed if i["color"] == color)
    assert admin.execute("SELECT to_jsonb(w) - 'updated_at' FROM ootd.scoring_weights w").fetchone()[0] == stored
    assert [i["outfit_id"] for i in what_if(client, profile).get_json()["items"]] == base  # nothing was written


def test_a_pool_of_the_date_can_be_picked(client):
    pools = client.get(f"/v1/pools?date={SERVED_DAY}").get_json()["pools"]
    other = next(p for p in pools if p["archetype"] != "Minimal")
    body = what_if(client, cluster_id=other["cluster_id"]).get_json()
    assert body["cluster_id"] == other["cluster_id"]


def test_what_if_mode_reads_no_user(pg_server, served_template):
    """With every user and like deleted, a what-if profile is ranked all the same: it reads none."""
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    try:
        before_app = create_app(url, SECRET, pool_max=1)
        try:
            before = before_app.test_client().post("/v1/simulate", json={"profile": WHAT_IF, **AFTERNOON}).get_json()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE ootd.likes, ootd_truth.users, ootd.served_feeds, ootd.users")
            after = before_app.test_client().post("/v1/simulate", json={"profile": WHAT_IF, **AFTERNOON}).get_json()
        finally:
            before_app.extensions["ootd"].db.close()
        assert after == before
    finally:
        drop_database(pg_server, name)


def test_a_what_if_profile_cannot_name_a_user(client):
    error = error_of(what_if(client, profile={**WHAT_IF, "user_id": 7}), 400)
    assert error["code"] == "invalid_profile" and "/v1/users/<id>/simulate" in error["message"]


# -------------------------------------------------------------- real user --
def test_a_real_user_s_simulation_needs_that_user_s_token(client):
    assert error_of(client.post("/v1/users/7/simulate", json=AFTERNOON), 401)["code"] == "unauthorized"
    assert error_of(client.post("/v1/users/7/simulate", json=AFTERNOON, headers=bearer(8)), 403)["code"] == "forbidden"
    response = client.post("/v1/users/7/simulate", json={**AFTERNOON, "profile": WHAT_IF}, headers=bearer(7))
    assert error_of(response, 400)["code"] == "invalid_parameter"  # a real user's profile is theirs, not the body's


def test_a_real_user_s_simulation_is_exactly_their_feed(client):
    response = client.post("/v1/users/7/simulate", json={**AFTERNOON, "limit": 5}, headers=bearer(7))
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["mode"] == "user" and body["user_id"] == 7
    feed = client.get(f"/v1/users/7/feed?at={body['at']}&limit=5", headers=bearer(7)).get_json()
    assert [(i["outfit_id"], i["score"]) for i in body["items"][:5]] == [
        (i["outfit_id"], i["score"]) for i in feed["items"]
    ]
    assert body["headline"] == feed["headline"] and body["cluster_id"] == feed["cluster_id"]
    assert body["relaxed_rules"] == feed["relaxed_rules"]
    assert body["variant"] is None and feed["variant"] is None  # no experiment runs


def test_a_real_user_s_simulation_reports_their_experiment_variant(client, admin):
    """With an experiment running, a real user's simulation names the user's variant (ootd.experiment_of) and
    ranks with its weights, as the feed does; a what-if profile names no user, so no variant."""
    users = range(1, 21)
    admin.execute(
        "SELECT * FROM ootd.start_experiment('sim_cosine_up', %s)",
        (Jsonb({"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}),),
    )
    try:
        seen = set()
        for user_id in users:
            expected = admin.execute("SELECT experiment, variant FROM ootd.experiment_of(%s)", (user_id,)).fetchone()
            assert expected[0] == "sim_cosine_up"
            response = client.post(f"/v1/users/{user_id}/simulate", json=AFTERNOON, headers=bearer(user_id))
            assert response.status_code == 200, response.data
            body = response.get_json()
            assert body["variant"] == expected[1]
            feed = client.get(f"/v1/users/{user_id}/feed?at={body['at']}", headers=bearer(user_id)).get_json()
            assert feed["variant"] == body["variant"]
            assert [(i["outfit_id"], i["score"]) for i in body["items"][:3]] == [
                (i["outfit_id"], i["score"]) for i in feed["items"]
            ]
            seen.add(body["variant"])
        assert seen == {"control", "more_cosine"}
        assert what_if(client).get_json()["variant"] is None
    finally:
        admin.execute("SELECT * FROM ootd.end_experiment('sim_cosine_up')")
    body = client.post("/v1/users/7/simulate", json=AFTERNOON, headers=bearer(7)).get_json()
    assert body["variant"] is None


# ---------------------------------------------------------------- catalog --
def test_pools_and_llm_calls(client):
    latest = client.get("/v1/pools").get_json()
    assert latest["pool_date"] == SERVED_DAY and latest["pools"]
    assert set(latest["pools"][0]) == {"pool_date", "cluster_id", "archetype", "weather", "members"}
    assert client.get("/v1/pools?date=1999-01-01").get_json() == {"pool_date": "1999-01-01", "pools": []}
    before = client.get("/v1/llm-calls?since=2000-01-01T00:00:00Z").get_json()
    what_if(client)
    assert client.get("/v1/llm-calls?since=2000-01-01T00:00:00Z").get_json() == before  # ranking calls no LLM
    assert client.get("/v1/llm-calls?since=2999-01-01T00:00:00Z").get_json()["calls"] == 0


# -------------------------------------------------------------- bad input --
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**AFTERNOON}, 400, "invalid_profile"),  # no profile
        ({"profile": "Torrance", **AFTERNOON}, 400, "invalid_profile"),
        ({"profile": {"style_dna": {}}, **AFTERNOON}, 400, "invalid_profile"),  # no city
        ({"profile": {**WHAT_IF, "city": "Torance"}, **AFTERNOON}, 400, "invalid_parameter"),  # unknown city
        ({"profile": {**WHAT_IF, "style_dna": {"archetype": "Goth"}}, **AFTERNOON}, 400, "invalid_parameter"),
        ({"profile": {**WHAT_IF, "style_rules": {"disliked_categories": ["Tutu"]}}, **AFTERNOON}, 400, None),
        ({"profile": {**WHAT_IF, "style_rules": {"disliked_categories": "Dress"}}, **AFTERNOON}, 400, None),
        ({"profile": {**WHAT_IF, "taste": [1, 2]}, **AFTERNOON}, 400, "invalid_profile"),
        ({"profile": {**WHAT_IF, "liked_outfits": ["x"]}, **AFTERNOON}, 400, "invalid_profile"),
        ({"profile": {**WHAT_IF, "shoe_size": 9}, **AFTERNOON}, 400, "invalid_parameter"),  # unknown key
        ({"profile": WHAT_IF, **AFTERNOON, "weights": {"cosine": "high"}}, 400, "invalid_weights"),
        ({"profile": WHAT_IF, **AFTERNOON, "weights": {"charisma": 2}}, 400, "invalid_parameter"),
        ({"profile": WHAT_IF, **AFTERNOON, "weights": {"liked_decay": 7}}, 400, "invalid_parameter"),
        ({"profile": WHAT_IF, **AFTERNOON, "weights": {"preferred_color": -1}}, 400, "invalid_parameter"),
        ({"profile": WHAT_IF, **AFTERNOON, "weights": [1]}, 400, "invalid_weights"),
        ({"profile": WHAT_IF, "date": SERVED_DAY, "time": "25:00"}, 400, "invalid_time"),
        ({"profile": WHAT_IF, "date": SERVED_DAY}, 400, "invalid_parameter"),  # a date needs a time
        ({"profile": WHAT_IF, "date": "2026-02-30", "time": "10:00"}, 400, "invalid_date"),
        ({"profile": WHAT_IF, **AFTERNOON, "at": "2026-04-20T12:00:00Z"}, 400, "invalid_parameter"),
        ({"profile": WHAT_IF, "at": "2026-04-20T12:00:00"}, 400, "invalid_at"),  # no offset
        ({"profile": WHAT_IF, **AFTERNOON, "cluster_id": "<script>"}, 400, "invalid_cluster_id"),
        ({"profile": WHAT_IF, **AFTERNOON, "cluster_id": "20260420_Minimal_Snowy"}, 404, "not_found"),
        ({"profile": WHAT_IF, **AFTERNOON, "limit": 0}, 400, "invalid_limit"),
        ({"profile": WHAT_IF, **AFTERNOON, "limit": True}, 400, "invalid_limit"),
        ({"profile": WHAT_IF, **AFTERNOON, "colour": "Navy"}, 400, "invalid_parameter"),  # unknown field
    ],
)
def test_bad_what_if_input_is_a_json_4xx(client, body, status, code):
    error = error_of(client.post("/v1/simulate", json=body), status)
    if code:
        assert error["code"] == code, error


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # found by schemathesis: each was a 500 or a 503 before
        ({"taste": [0] * 32}, "invalid_profile"),  # no direction: the cosine would be NaN, which JSON cannot carry
        ({"taste": [1e-300] * 32}, "invalid_profile"),  # the same once pgvector rounds to single precision
        ({"taste": [1e7] + [1] * 31}, "invalid_profile"),
    ],
)
def test_a_taste_without_direction_is_a_400(client, raw, code):
    assert error_of(what_if(client, profile={**WHAT_IF, **raw}), 400)["code"] == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('"weights": {"cosine": 1' + "0" * 400 + "}", "invalid_weights"),  # an integer no float holds: was a 500
        ('"weights": {"jitter": 5e-324}', "invalid_weights"),  # underflows in the ranking
        ('"weights": {"preferred_color": 1e308}', "invalid_weights"),  # overflows in the ranking
        ('"at": "0001-01-01T00:00:00Z"', "invalid_at"),  # local time before year 1: was a 503
        ('"at": "9999-12-31T23:59:59Z"', "invalid_at"),
        ('"date": "0001-01-01", "time": "00:00"', "invalid_date"),
        ('"date": "9999-12-31", "time": "23:59"', "invalid_date"),
    ],
)
def test_numbers_and_instants_past_what_the_ranking_can_hold_are_a_400(client, body, code):
    raw = '{"profile": {"city": "Auckland"}, ' + body + "}"
    assert error_of(client.post("/v1/simulate", data=raw, content_type="application/json"), 400)["code"] == code


def test_integral_numbers_are_integers_and_early_years_are_zero_padded(client):
    """JSON Schema's integer: 2.0 is 2; a year before 1000 keeps four digits in local_time."""
    body = what_if(client, limit=2.0, profile={**WHAT_IF, "liked_outfits": [1.0]}).get_json()
    assert body["limit"] == 2
    early = what_if(client, date="0999-12-31", time="23:59").get_json()
    assert early["local_time"] == "0999-12-31 23:59"


def test_bad_requests_are_json_4xx(client):
    assert error_of(client.post("/v1/simulate", data="{", content_type="application/json"), 400)["code"] == (
        "invalid_json"
    )
    assert error_of(client.post("/v1/simulate", data="x", content_type="text/plain"), 415)
    assert error_of(client.post("/v1/simulate", data="[" + "1," * 5000 + "1]", content_type="application/json"), 413)
    assert error_of(client.post("/v1/simulate?x=1", json={"profile": WHAT_IF}), 400)["code"] == "invalid_parameter"
    assert error_of(client.get("/v1/simulate"), 405)
    assert error_of(client.get("/v1/pools?date=yesterday"), 400)["code"] == "invalid_date"
    assert error_of(client.get("/v1/pools?day=2026-04-20"), 400)["code"] == "invalid_parameter"
    assert error_of(client.get("/v1/llm-calls"), 400)["code"] == "invalid_since"
    assert error_of(client.get("/v1/llm-calls?since=noon"), 400)["code"] == "invalid_at"
    assert error_of(client.post("/v1/users/abc/simulate", json=AFTERNOON, headers=bearer(7)), 400)


def test_a_database_without_the_simulator_s_grants_is_a_503_that_says_so(pg_server, served_template):
    name = create_database(pg_server, SERVED_TEMPLATE)
    url = pg_server.dsn(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "REVOKE EXECUTE ON FUNCTION ootd.simulate(jsonb, timestamptz, jsonb, text, integer) FROM ootd_api"
            )
        app = create_app(url, SECRET, pool_max=1)
        try:
            error = error_of(app.test_client().post("/v1/simulate", json={"profile": WHAT_IF, **AFTERNOON}), 503)
        finally:
            app.extensions["ootd"].db.close()
        assert error["code"] == "not_migrated" and "ootd migrate" in error["message"]
    finally:
        drop_database(pg_server, name)


# ------------------------------------------------------------- screenshot --
def test_the_readme_screenshot_is_a_small_1280x800_png():
    """docs/simulator.png is written by tests/browser (OOTD_WRITE_DOCS_SCREENSHOT=1) from the real page."""
    path = REPO_ROOT / "docs" / "simulator.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 800)
    assert len(data) < 200_000
