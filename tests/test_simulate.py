"""ootd.simulate (issue 18): the feed's own ranking for a what-if profile, weights and pool; a stored
user's ootd.user_profile gives exactly that user's feed; bad input is a 22023/P0002 and writes nothing."""

from __future__ import annotations

import json
from datetime import date

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.conftest import SERVED_DAY, create_database, drop_database

DAY = date.fromisoformat(SERVED_DAY)
SIMULATE = "SELECT * FROM ootd.simulate(%s, %s::timestamptz, %s, %s, %s)"


@pytest.fixture(scope="module")
def served(pg_server, served_template):
    name = create_database(pg_server, served_template)
    with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
        yield conn
    drop_database(pg_server, name)


def simulate(conn, profile, at=f"{DAY} 12:00+00", weights=None, cluster=None, limit=3):
    return conn.execute(SIMULATE, (Jsonb(profile), at, Jsonb(weights or {}), cluster, limit)).fetchall()


def test_a_stored_users_profile_simulates_to_exactly_their_feed_explain(served):
    served.execute("SELECT ootd.like(7, (SELECT min(outfit_id) FROM ootd.feed(7, %s)))", (f"{DAY} 12:00+00",))
    for user_id in [7, *range(100, 160)]:
        profile = served.execute("SELECT ootd.user_profile(%s)", (user_id,)).fetchone()[0]
        for at in (f"{DAY} 09:00+00", f"{DAY} 23:30+00"):
            explained = served.execute(
                "SELECT * FROM ootd.feed_explain(%s, %s, 5) ORDER BY rank NULLS LAST, score DESC, outfit_id",
                (user_id, at),
            ).fetchall()
            assert simulate(served, profile, at, limit=5) == explained, (user_id, at)
    assert served.execute("SELECT ootd.user_profile(7) -> 'liked_outfits'").fetchone()[0]  # a like was carried


def test_a_what_if_profile_reads_no_user_and_weights_apply_to_the_call_only(served):
    profile = {
        "city": "torrance",  # any case
        "style_dna": {"archetype": "Minimal", "preferred_colors": ["Navy"]},
        "style_rules": {"disliked_categories": ["Dress"]},
    }
    rows = simulate(served, profile, limit=5)
    assert rows and all(r[3] != "Dress" for r in rows if r[0] is not None)
    assert all(r[0] is None for r in rows if r[3] == "Dress")  # vetoed: no rank
    assert "Torrance" in rows[0][16]
    assert all(r[14] != 0 for r in rows)  # the tie-break still applies without a user id
    third = next(r for r in rows if r[0] == 3)
    profile["style_dna"]["preferred_colors"] = [third[4]]
    heavier = simulate(served, profile, weights={"preferred_color": 40}, limit=5)
    assert [r[1] for r in heavier] != [r[1] for r in rows]
    assert next(r for r in heavier if r[0] == 1)[4] == third[4]
    assert {r[8] for r in heavier if r[4] == third[4]} == {40}
    profile["style_dna"]["preferred_colors"] = ["Navy"]
    before = served.execute("SELECT to_jsonb(w) FROM ootd.scoring_weights w").fetchone()[0]
    assert served.execute("SELECT to_jsonb(w) FROM ootd.scoring_weights w").fetchone()[0] == before  # not written
    assert simulate(served, profile, limit=5) == rows
    # another pool of the day
    other = served.execute(
        "SELECT cluster_id FROM ootd.pool_catalog(%s) WHERE archetype <> 'Minimal' LIMIT 1", (DAY,)
    ).fetchone()[0]
    assert {r[17] for r in simulate(served, profile, cluster=other)} == {other}


@pytest.mark.parametrize(
    "profile, weights, cluster, limit, error, message",
    [
        ({"city": "Atlantis"}, {}, None, 3, errors.InvalidParameterValue, 'unknown city "Atlantis"'),
        ([], {}, None, 3, errors.InvalidParameterValue, "profile must be a JSON object"),
        ({"city": "Torrance", "age": 3}, {}, None, 3, errors.InvalidParameterValue, "profile has unknown key"),
        ({"city": "Torrance", "taste": [1, 2]}, {}, None, 3, errors.InvalidParameterValue, "32 numbers"),
        (
            {"city": "Torrance", "style_dna": {"archetype": "Goth"}},
            {},
            None,
            3,
            errors.InvalidParameterValue,
            'unknown archetype "Goth"',
        ),
        ({"city": "Torrance"}, {"colour": 1}, None, 3, errors.InvalidParameterValue, 'unknown weight "colour"'),
        ({"city": "Torrance"}, {"singleton": False}, None, 3, errors.InvalidParameterValue, "unknown weight"),
        ({"city": "Torrance"}, {"cosine": "x"}, None, 3, errors.InvalidParameterValue, "bad weight value"),
        ({"city": "Torrance"}, {"cosine": -1}, None, 3, errors.InvalidParameterValue, "cosine must be >= 0"),
        ({"city": "Torrance"}, {}, "20990101_Minimal_Sunny", 3, errors.NoDataFound, "unknown pool"),
        ({"city": "Torrance"}, {}, None, 0, errors.InvalidParameterValue, "p_limit must be between 1 and 20"),
    ],
)
def test_bad_input_is_a_precise_error(served, profile, weights, cluster, limit, error, message):
    with pytest.raises(error) as caught:
        served.execute(SIMULATE, (Jsonb(profile), f"{DAY} 12:00+00", Jsonb(weights), cluster, limit))
    assert message in caught.value.diag.message_primary


def test_the_api_role_may_simulate_but_not_read_users(served):
    served.execute("SET ROLE ootd_api")
    try:
        rows = simulate(served, {"city": "Lagos", "style_dna": {"archetype": "Glam"}})
        assert len(rows) > 3
        assert json.dumps(served.execute("SELECT ootd.vocabulary()").fetchone()[0])
        with pytest.raises(errors.InsufficientPrivilege):
            served.execute("SELECT count(*) FROM ootd.users")
    finally:
        served.execute("RESET ROLE")
