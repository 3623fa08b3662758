"""Issue 27, item 4: the archetype term of the score.

style_dna.archetype_affinity (learned by the likes trigger: the stated archetype seeded at 1, + 1 per like of
an outfit drawn from a pool of that archetype), its validation by the users CHECK, the score's multiplier
1 + scoring_weights.archetype x ln(1 + affinity) in every place weights flow (the table, what-if weights,
experiments' variants), and the headline naming the archetype of the items shown.  The feed-wide checks
(own pool first, headlines never naming an archetype most items are not) are in tests/test_feed.py.
"""

from __future__ import annotations

import math

import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.conftest import SERVED_DAY
from tests.test_likes import STORED_PROFILE, connect

NOON = f"{SERVED_DAY} 12:00+00"
EXPLAIN = (
    "SELECT e.outfit_id, e.rank, e.drawn_from, e.cluster_id, e.archetype_boost, e.headline, p.archetype "
    "FROM ootd.feed_explain(%s, %s, 3) e JOIN ootd.pools p ON p.pool_date = e.pool_date AND p.cluster_id = e.drawn_from "
    "ORDER BY e.rank NULLS LAST, e.score DESC, e.outfit_id"
)


@pytest.fixture
def db(served_url):
    """The served data with the neighbour draw on (off by default since 0019): the archetype term ranks
    outfits of several archetypes' pools only when the feed reads them."""
    with connect(served_url) as conn:
        conn.execute("UPDATE ootd.scoring_weights SET neighbour_pools = true")
        try:
            yield conn
        finally:
            conn.rollback()
            conn.execute("UPDATE ootd.scoring_weights SET neighbour_pools = false")


def a_user_and_a_neighbours_outfits(conn, n=3):
    """A user without likes or vetoes, the served pool's archetype and a same-weather neighbour's archetype
    with n of its priority-daypart outfits (those the user's feed reads as candidates)."""
    user_id = conn.execute(
        "SELECT id FROM ootd.users WHERE likes_count = 0 AND style_dna ? 'archetype' "
        "AND NOT style_rules ?| '{disliked_categories,disliked_colors}' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    rows = conn.execute(EXPLAIN, (user_id, NOON)).fetchall()
    own = rows[0][3]
    neighbour = next(r for r in rows if r[2] != own)
    outfits = [r[0] for r in rows if r[2] == neighbour[2]][:n]
    own_archetype = next(r[6] for r in rows if r[2] == own)
    return user_id, own_archetype, neighbour[6], outfits


# ------------------------------------------------------------------ learning --
def test_likes_teach_the_archetype_affinity_and_unlikes_take_it_back_bit_for_bit(db):
    user_id, own, other, outfits = a_user_and_a_neighbours_outfits(db)
    stated = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert "archetype_affinity" not in stated and stated["archetype"] == own
    before = db.execute(STORED_PROFILE, (user_id,)).fetchone()[0]

    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[0]))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["archetype_affinity"] == {own: 1, other: 1}  # the stated archetype seeded at 1, + the like
    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[1]))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["archetype_affinity"] == {own: 1, other: 2}
    assert db.execute("SELECT stated_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0] == stated

    middle = db.execute(STORED_PROFILE, (user_id,)).fetchone()[0]
    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[2]))
    db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfits[2]))
    assert db.execute(STORED_PROFILE, (user_id,)).fetchone()[0] == middle  # a like and its unlike: bit for bit

    db.execute("DELETE FROM ootd.likes WHERE user_id = %s", (user_id,))
    assert db.execute(STORED_PROFILE, (user_id,)).fetchone()[0] == before  # the stated profile, verbatim


def test_a_stated_archetype_affinity_is_the_starting_point_and_edits_relearn(db):
    user_id, own, other, outfits = a_user_and_a_neighbours_outfits(db)
    db.execute("SELECT ootd.put_user(%s, p_style_dna => %s)", (user_id, Jsonb({"archetype_affinity": {other: 0.5}})))
    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[0]))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["archetype_affinity"] == {other: 1.5}  # stated (no seed then) + the like
    # a stated archetype edit while the user has likes: the seed moves with it (no stated affinity left)
    db.execute("UPDATE ootd.users SET stated_dna = stated_dna - 'archetype_affinity' WHERE id = %s", (user_id,))
    db.execute("SELECT ootd.put_user(%s, p_style_dna => %s)", (user_id, Jsonb({"archetype": other})))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["archetype"] == other and dna["archetype_affinity"] == {other: 2}


def test_a_user_without_a_stated_archetype_is_seeded_with_the_default_one(db):
    user_id, _, other, outfits = a_user_and_a_neighbours_outfits(db)
    db.execute("UPDATE ootd.users SET style_dna = style_dna - 'archetype' WHERE id = %s", (user_id,))
    default = db.execute("SELECT ootd.default_archetype()").fetchone()[0]
    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[0]))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["archetype_affinity"] == {default: 1} | {other: 1 + (other == default)}


# ---------------------------------------------------------------- validation --
@pytest.mark.parametrize(
    "affinity, error, message",
    [
        ({"Goth": 1}, errors.ForeignKeyViolation, 'unknown archetype "Goth" in style_dna.archetype_affinity'),
        (
            {"Minimal": -1},
            errors.CheckViolation,
            "style_dna.archetype_affinity must map archetype names to numbers >= 0",
        ),
        (
            {"Minimal": "x"},
            errors.CheckViolation,
            "style_dna.archetype_affinity must map archetype names to numbers >= 0",
        ),
        (["Minimal"], errors.CheckViolation, "style_dna.archetype_affinity must map archetype names to numbers >= 0"),
        ({"Minimal": 2e6}, errors.CheckViolation, 'numbers between 0 and 1000000 ("Minimal" is larger)'),
    ],
)
def test_the_users_check_validates_the_archetype_affinity(db, affinity, error, message):
    before = db.execute("SELECT style_dna FROM ootd.users WHERE id = 1").fetchone()[0]
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        db.execute(
            "UPDATE ootd.users SET style_dna = style_dna || jsonb_build_object('archetype_affinity', %s::jsonb) "
            "WHERE id = 1",
            (Jsonb(affinity),),
        )
    assert db.execute("SELECT style_dna FROM ootd.users WHERE id = 1").fetchone()[0] == before
    db.execute('UPDATE ootd.users SET style_dna = style_dna || \'{"archetype_affinity": {"Glam": 1e6}}\' WHERE id = 1')


def test_refresh_vocabulary_refuses_to_drop_an_archetype_a_learned_affinity_names(db):
    db.execute("INSERT INTO ootd.archetypes (name, adjective, keywords) VALUES ('Goth', 'gothic', '{dark}')")
    db.execute("SELECT ootd.refresh_vocabulary()")
    db.execute('UPDATE ootd.users SET style_dna = style_dna || \'{"archetype_affinity": {"Goth": 2}}\' WHERE id = 2')
    db.execute("DELETE FROM ootd.archetypes WHERE name = 'Goth'")
    with pytest.raises(
        errors.ForeignKeyViolation,
        match=r"cannot drop archetype \"Goth\" from the vocabulary: 1 user\(s\) name it \(user 2",
    ):
        db.execute("SELECT ootd.refresh_vocabulary()")


# ------------------------------------------------------------------- scoring --
def test_the_multiplier_is_one_plus_the_weight_times_ln_one_plus_the_affinity(db):
    user_id, own, other, outfits = a_user_and_a_neighbours_outfits(db)
    w = db.execute("SELECT archetype FROM ootd.scoring_weights").fetchone()[0]
    assert w == 1.0  # the default (docs: README, Serving)
    rows = db.execute(EXPLAIN, (user_id, NOON)).fetchall()
    assert {r[6]: r[4] for r in rows} == {**{r[6]: 1.0 for r in rows}, own: pytest.approx(1 + w * math.log(2))}
    assert rows[0][2] == rows[0][3]  # own pool first

    for outfit_id in outfits:  # three likes of the neighbour's archetype: affinity 3 against the stated 1
        db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id))
    rows = db.execute(EXPLAIN, (user_id, NOON)).fetchall()
    boosts = {r[6]: r[4] for r in rows}
    assert boosts[other] == pytest.approx(1 + w * math.log(4)) and boosts[own] == pytest.approx(1 + w * math.log(2))
    served = [r for r in rows if r[1] is not None and r[1] <= 3]
    assert served[0][6] == other  # what the likes taught comes first (the liked ones decay)
    named = db.execute(
        "SELECT a.adjective FROM ootd.archetypes a WHERE a.name = ootd._served_archetype(%s)", ([r[6] for r in served],)
    ).fetchone()
    assert served[0][5].split(" look for ")[0].split(" ")[2:] == ([named[0]] if named else [])

    db.execute("UPDATE ootd.scoring_weights SET archetype = 0")
    try:
        assert {r[4] for r in db.execute(EXPLAIN, (user_id, NOON)).fetchall()} == {1.0}
    finally:
        db.execute("UPDATE ootd.scoring_weights SET archetype = DEFAULT")


def test_the_oracle_scores_with_the_archetype_of_each_outfits_pool(db):
    """ootd._outfit_score (the evaluation's oracle) equals feed_explain's score on every candidate, the
    neighbours' included, for a user with learned archetype affinities."""
    user_id, _, _, outfits = a_user_and_a_neighbours_outfits(db)
    db.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[0]))
    rows = db.execute(
        "SELECT e.score, ootd._outfit_score(w, u.id, u.style_dna, u.style_rules, u.taste, "
        "       %s::timestamptz AT TIME ZONE u.timezone, o.id = %s, o.id, o.category, o.color, o.daypart, "
        "       o.embedding, p.archetype) AS oracle "
        "FROM ootd.feed_explain(%s, %s, 3) e JOIN ootd.outfits o ON o.id = e.outfit_id "
        "JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id "
        "CROSS JOIN ootd.users u CROSS JOIN ootd.scoring_weights w WHERE u.id = %s",
        (NOON, outfits[0], user_id, NOON, user_id),
    ).fetchall()
    assert len(rows) > 20 and [r[0] for r in rows] == [r[1] for r in rows]


def test_what_if_weights_and_profiles_take_the_archetype(db):
    profile = {"city": "Torrance", "style_dna": {"archetype": "Minimal"}}
    sim = "SELECT drawn_from, archetype_boost, rank, headline FROM ootd.simulate(%s, %s, %s) ORDER BY rank NULLS LAST"
    default = db.execute(sim, (Jsonb(profile), NOON, Jsonb({}))).fetchall()
    assert "_Minimal_" in default[0][0] and default[0][1] == pytest.approx(1 + math.log(2))
    off = db.execute(sim, (Jsonb(profile), NOON, Jsonb({"archetype": 0}))).fetchall()
    assert {r[1] for r in off} == {1.0}
    learned = {**profile, "style_dna": {"archetype": "Minimal", "archetype_affinity": {"Glam": 5}}}
    rows = db.execute(sim, (Jsonb(learned), NOON, Jsonb({}))).fetchall()
    assert {r[1] for r in rows if "_Minimal_" in r[0]} == {1.0}  # an affinity document replaces the seed
    assert all("_Glam_" in r[0] for r in rows[:3]) and " glamorous look for " in rows[0][3]
    with pytest.raises(errors.InvalidParameterValue, match="archetype must be >= 0, got -1"):
        db.execute(sim, (Jsonb(profile), NOON, Jsonb({"archetype": -1})))
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE ootd.scoring_weights SET archetype = 2e6")
    catalog = db.execute("SELECT name, value, min_value, max_value FROM ootd.weight_catalog() WHERE name = 'archetype'")
    assert catalog.fetchone() == ("archetype", 1.0, 0.0, 1e6)


def test_an_experiment_variant_may_replace_the_archetype_weight(db):
    db.execute(
        "SELECT * FROM ootd.start_experiment('no_archetype', %s)",
        (Jsonb({"control": {"share": 0.5}, "flat": {"share": 0.5, "weights": {"archetype": 0}}}),),
    )
    try:
        seen = {}
        for user_id in range(1, 41):
            rows = db.execute(
                "SELECT variant, archetype_boost FROM ootd.feed_explain(%s, %s, 3)", (user_id, NOON)
            ).fetchall()
            seen.setdefault(rows[0][0], set()).update(r[1] for r in rows)
        assert seen["flat"] == {1.0} and max(seen["control"]) == pytest.approx(1 + math.log(2))
    finally:
        db.execute("SELECT ootd.end_experiment('no_archetype')")


# ------------------------------------------------------------------ headline --
@pytest.mark.parametrize(
    "archetypes, named",
    [
        (["Casual"], "Casual"),
        (["Casual", "Minimal", "Casual"], "Casual"),
        (["Minimal", "Casual", "Casual"], "Casual"),
        (["Casual", "Minimal", "Classic"], None),  # the Sporty user: no archetype is most of the items
        (["Casual", "Minimal"], None),
        (["Casual", "Casual", "Minimal", "Minimal"], None),
        ([], None),
    ],
)
def test_the_headline_names_the_archetype_of_most_items_shown(db, archetypes, named):
    assert db.execute("SELECT ootd._served_archetype(%s::text[])", (archetypes,)).fetchone()[0] == named
    headline = db.execute(
        "SELECT ootd._headline('sun-ready', %s, 'tonight', 'Bengaluru')", ("laid-back" if named else None,)
    )
    assert headline.fetchone()[0] == (
        "A sun-ready laid-back look for tonight in Bengaluru" if named else "A sun-ready look for tonight in Bengaluru"
    )


def test_a_what_if_profile_is_served_a_headline_matching_its_items(db):
    """The issue's case: a Sporty profile in a Sunny city gets sporty items under a sporty headline."""
    city = db.execute(
        "SELECT w.city FROM ootd.weather_daily w JOIN ootd.pools p ON p.weather = w.condition "
        "WHERE w.day = %s AND p.pool_date = %s AND p.archetype = 'Sporty' ORDER BY w.city LIMIT 1",
        (SERVED_DAY, SERVED_DAY),
    ).fetchone()[0]
    rows = db.execute(
        "SELECT drawn_from, headline FROM ootd.simulate(%s, %s) WHERE rank <= 3 ORDER BY rank",
        (Jsonb({"city": city, "style_dna": {"archetype": "Sporty"}}), f"{SERVED_DAY} 22:00+00"),
    ).fetchall()
    assert all("_Sporty_" in r[0] for r in rows) and " sporty look for " in rows[0][1], rows


def test_the_archetype_component_comes_last_in_feed_explain(db):
    """feed_explain's new column is last: the existing columns keep their positions (callers index them)."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT a.attname FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid "
            "WHERE t.oid = 'ootd.ranked_outfit'::regtype AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        )
    ]
    assert names[-3:] == ["drawn_from", "variant", "archetype_boost"] and len(names) == 24
