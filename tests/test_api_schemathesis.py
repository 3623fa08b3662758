"""schemathesis against /openapi.json of the live app (real database): zero failures.

The document is loaded from the running app (`from_wsgi`), and every
operation is fuzzed with schema-valid and schema-violating inputs (positive
and negative generation modes) through schemathesis' Hypothesis strategies.
Every response goes through all of schemathesis' checks: no 5xx, status code
documented, content type, headers, body schema, 4xx for invalid input, 2xx
or 404 for valid input, auth enforced (it replays requests without and with
a bad token).  Each request carries a token minted for the user id in its
path, so valid cases reach the database instead of stopping at 403.

The simulator's what-if profile names cities, archetypes, categories and
colors: they are data (the database's vocabulary), so no schema can say which
strings are known, and an unknown one is rightly a 400.  A schema-valid profile
therefore has its names mapped onto the live vocabulary (a liked category never
also disliked) before it is sent, as a user id gets its token: the shapes,
numbers and every other field stay as generated.

(`schemathesis.pytest.from_fixture` would be the shorter spelling, but its
lazy loader sets a private pytest attribute that pytest 9.2 removed.)
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from psycopg.types.json import Jsonb
from schemathesis import GenerationMode

from api.app import create_app
from api.auth import MAX_USER_ID, issue_token
from api.openapi import spec
from batch.nightly import NightlyConfig, run_nightly
from tests.conftest import SERVED_TEMPLATE, create_database, drop_database

SECRET = "schemathesis-secret-" + "s" * 60
MAX_EXAMPLES = 50  # per operation and generation mode; the whole module runs in about 10 s

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260420,  # reproducible runs
        # tokens are added per case below (a valid one for the path's user), not generated
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "with-security-parameters": False},
        # a body over 4096 bytes is a 413 whatever its schema (a transport limit no JSON Schema states): it is a
        # rejection, and a schema-valid what-if body can be that large too
        "checks": {
            "enabled": True,
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
            },
            "negative_data_rejection": {
                "expected-statuses": [
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "406",
                    "409",
                    "413",
                    "415",
                    "422",
                    "428",
                    "429",
                    "5xx",
                ]
            },
        },
    }
)


@pytest.fixture(scope="module")
def live_app(pg_server, served_template):
    """Users, the pools of SERVED_DAY and of today (so /readyz is 200: a 503 is a failure to schemathesis)."""
    name = create_database(pg_server, SERVED_TEMPLATE)
    run_nightly(pg_server.dsn(name), NightlyConfig(day=datetime.now(timezone.utc).date(), llm="offline"))
    app = create_app(pg_server.dsn(name), SECRET, pool_max=2)
    yield app
    app.extensions["ootd"].db.close()
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def api_schema(live_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", live_app, config=CONFIG)


@pytest.fixture(scope="module")
def vocabulary(live_app) -> dict[str, list[str]]:
    catalog = live_app.extensions["ootd"].db.simulator_catalog()
    return {"cities": [c["name"] for c in catalog["cities"]], **catalog["vocabulary"]}


def _pick(name: Any, names: list[str]) -> Any:
    return names[zlib.crc32(name.encode()) % len(names)] if isinstance(name, str) else name


def known_names(body: Any, vocabulary: dict[str, list[str]]) -> Any:
    """A what-if body whose profile names only what the database knows (see the module's docstring)."""
    profile = body.get("profile") if isinstance(body, dict) else None
    if not isinstance(profile, dict):
        return body
    categories = vocabulary["categories"]
    liked, disliked = categories[::2], categories[1::2]  # never both liked and disliked
    profile = {**profile, "city": _pick(profile.get("city"), vocabulary["cities"])}
    dna = profile.get("style_dna")
    if isinstance(dna, dict):
        dna = {**dna}
        if "archetype" in dna:
            dna["archetype"] = _pick(dna["archetype"], vocabulary["archetypes"])
        if isinstance(dna.get("preferred_colors"), list):
            dna["preferred_colors"] = [_pick(n, vocabulary["colors"]) for n in dna["preferred_colors"]]
        for key, names in (
            ("category_affinity", categories),
            ("color_affinity", vocabulary["colors"]),
            ("archetype_affinity", vocabulary["archetypes"]),
        ):
            if isinstance(dna.get(key), dict):
                dna[key] = {_pick(k, names): v for k, v in dna[key].items()}
        profile["style_dna"] = dna
    rules = profile.get("style_rules")
    if isinstance(rules, dict):
        rules = {**rules}
        for key, names in (
            ("liked_categories", liked),
            ("disliked_categories", disliked),
            ("disliked_colors", vocabulary["colors"]),
        ):
            if isinstance(rules.get(key), list):
                rules[key] = [_pick(n, names) for n in rules[key]]
        profile["style_rules"] = rules
    return {**body, "profile": profile}


def token_for(case) -> dict[str, str]:
    """A valid token for the path's user when that is a user id, else for user 1 (then 400/403)."""
    user_id = (case.path_parameters or {}).get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 1 <= user_id <= MAX_USER_ID:
        user_id = 1
    return {"Authorization": f"Bearer {issue_token(user_id, SECRET)}"}


def test_a_feed_and_a_user_s_simulation_conform_with_and_without_an_experiment(live_app, api_schema):
    """`variant` is a string while an experiment runs and null otherwise: the document admits both, and only
    those (schemathesis' fuzzing sees whichever state the database is in)."""
    client = live_app.test_client()
    feed_op, simulate_op = (
        api_schema["/v1/users/{user_id}/feed"]["GET"],
        api_schema["/v1/users/{user_id}/simulate"]["POST"],
    )
    headers = {"Authorization": f"Bearer {issue_token(7, SECRET)}"}

    def both() -> list:
        feed = client.get("/v1/users/7/feed", headers=headers)
        simulation = client.post("/v1/users/7/simulate", json={}, headers=headers)
        assert feed.status_code == 200 and simulation.status_code == 200, (feed.data, simulation.data)
        feed_op.validate_response(feed)
        simulate_op.validate_response(simulation)
        return [feed.get_json()["variant"], simulation.get_json()["variant"]]

    assert both() == [None, None]
    url = live_app.extensions["ootd"].db.pool.conninfo
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT * FROM ootd.start_experiment('schema_check', %s)",
            (Jsonb({"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}),),
        )
        try:
            variant = admin.execute("SELECT variant FROM ootd.experiment_of(7)").fetchone()[0]
            assert both() == [variant, variant] and variant in ("control", "more_cosine")
            # the schema is not merely permissive: a variant of another type, or none, does not conform
            feed = client.get("/v1/users/7/feed", headers=headers)
            served = schemathesis.Response.from_any(feed)
            assert feed_op.is_valid_response(served)
            for body in (
                {**feed.get_json(), "variant": 42},
                {k: v for k, v in feed.get_json().items() if k != "variant"},
            ):
                content = json.dumps(body).encode()
                forged_headers = {**served.headers, "content-length": [str(len(content))]}
                forged = schemathesis.Response(200, forged_headers, content, served.request, elapsed=0.0, verify=False)
                assert not feed_op.is_valid_response(forged), body
        finally:
            admin.execute("SELECT * FROM ootd.end_experiment('schema_check')")
    assert both() == [None, None]


# Every documented operation but the document itself, which schemathesis leaves out of a run (the document is
# static; the test below proves the live app serves the same one).
OPERATIONS = [
    (method.upper(), path) for path, methods in spec()["paths"].items() for method in methods if path != "/openapi.json"
]
HAS_INPUT = {
    (m.upper(), p)
    for p, methods in spec()["paths"].items()
    for m, op in methods.items()
    if op.get("parameters") or op.get("requestBody")
}
CASES = [
    (m, p, mode)
    for m, p in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or (m, p) in HAS_INPUT
]


def test_the_live_app_serves_the_document_under_test(api_schema):
    served = [(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()]
    assert sorted(served) == sorted(OPERATIONS), served


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_api_conforms_to_its_openapi_document(api_schema, vocabulary, method, path, mode):
    operation = api_schema[path][method]
    known = mode is GenerationMode.POSITIVE and path == "/v1/simulate"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case):
        if known:
            case.body = known_names(case.body, vocabulary)
        case.call_and_validate(headers=token_for(case))

    conforms()
