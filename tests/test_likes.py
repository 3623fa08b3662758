"""Likes: ootd.like / ootd.unlike, which record a like and learn style_dna and taste in the same call."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import errors

from tests.conftest import SERVED_DAY

NOON = f"{SERVED_DAY} 12:00+00"


#: A user's stored profile as text, every column but updated_at: equal text is equal bytes (numerics
#: keep their scale, floats print exactly).
STORED_PROFILE = (
    "SELECT row(u.city, u.timezone, u.style_dna, u.style_rules, u.taste, u.likes_count, u.taste_norm, "
    "u.stated_dna, u.stated_taste, u.stated_taste_norm)::text FROM ootd.users u WHERE u.id = %s"
)


def connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


def profile(conn, user_id):
    return conn.execute(
        "SELECT style_dna, taste, taste_norm, likes_count, updated_at FROM ootd.users WHERE id = %s", (user_id,)
    ).fetchone()


def outfit(conn, outfit_id):
    return conn.execute(
        "SELECT category, color, vibe, trend, dare, embedding FROM ootd.outfits WHERE id = %s", (outfit_id,)
    ).fetchone()


@pytest.fixture
def db(served_url):
    with connect(served_url) as conn:
        yield conn


def a_user_and_a_new_color_outfit(conn):
    """A user with a stated profile, and an outfit whose color and category the user has not touched."""
    user_id, dna = conn.execute(
        "SELECT id, style_dna FROM ootd.users WHERE style_dna ? 'vibe' AND taste IS NOT NULL "
        "AND jsonb_array_length(style_dna -> 'preferred_colors') BETWEEN 1 AND 3 ORDER BY id LIMIT 1"
    ).fetchone()
    outfit_id = conn.execute(
        "SELECT id FROM ootd.outfits WHERE NOT (%s::jsonb -> 'preferred_colors') ? color "
        "AND NOT coalesce(%s::jsonb -> 'category_affinity', '{}') ? category ORDER BY id LIMIT 1",
        (psycopg.types.json.Jsonb(dna), psycopg.types.json.Jsonb(dna)),
    ).fetchone()[0]
    return user_id, outfit_id


def test_one_like_updates_every_field_and_unlike_restores_them(db):
    user_id, outfit_id = a_user_and_a_new_color_outfit(db)
    dna0, taste0, norm0, count0, _ = profile(db, user_id)
    category, color, vibe, trend, dare, embedding = outfit(db, outfit_id)
    assert count0 == 0 and norm0 == pytest.approx(1.0)

    assert db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    dna1, taste1, norm1, count1, _ = profile(db, user_id)
    assert count1 == 1
    # colors: stated ones seeded at 0.5, 0.499, ... in stated order; the liked one counts 1 and leads
    stated = dna0["preferred_colors"]
    assert dna1["color_affinity"] == {color: 1} | {c: round(0.5 - 0.001 * i, 3) for i, c in enumerate(stated)}
    assert dna1["preferred_colors"] == [color] + stated
    assert dna1["category_affinity"] == dna0.get("category_affinity", {}) | {category: 1}
    # running means with the stated value as one observation
    for key, value in (("vibe", vibe), ("trend", trend), ("dare", dare)):
        assert dna1[key] == pytest.approx((dna0[key] + value) / 2, abs=1e-6), key
    expected = (taste0.to_numpy() + embedding.to_numpy()) / 2
    assert taste1.to_numpy() == pytest.approx(expected / np.linalg.norm(expected), abs=1e-5)
    assert norm1 == pytest.approx(float(np.linalg.norm(expected)), abs=1e-5)
    assert dna1["archetype"] == dna0["archetype"]

    assert db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    dna2, taste2, norm2, count2, _ = profile(db, user_id)
    assert count2 == 0
    assert dna2 == dna0 and taste2.to_text() == taste0.to_text() and norm2 == norm0  # the stated profile, verbatim
    assert db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone()[0] is False


def test_likes_learn_in_triggers_and_only_the_owner_writes_likes(db):
    user_id, outfit_id = a_user_and_a_new_color_outfit(db)
    color = outfit(db, outfit_id)[1]
    assert db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    dna, _, _, count, _ = profile(db, user_id)
    assert count == 1 and dna["preferred_colors"][0] == color
    assert db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    assert profile(db, user_id)[3] == 0
    triggers = db.execute(
        "SELECT tgrelid::regclass::text, tgname, tgfoid::regproc::text FROM pg_trigger "
        "WHERE tgrelid IN ('ootd.likes'::regclass, 'ootd.users'::regclass) AND NOT tgisinternal ORDER BY tgname"
    ).fetchall()
    assert triggers == [
        ("ootd.likes", "likes_learn_deleted", "ootd._likes_changed"),
        ("ootd.likes", "likes_learn_inserted", "ootd._likes_changed"),
        ("ootd.likes", "likes_learn_truncated", "ootd._likes_truncated"),
        ("ootd.likes", "likes_learn_updated", "ootd._likes_changed"),
        ("ootd.users", "users_rematerialize", "ootd._users_changed"),
    ]  # learning is the likes triggers' (tests/test_likes_writers.py: every writer); users' only trigger
    # writes the user's served feeds again (06_serving_ahead.sql), it learns nothing
    writers = db.execute(
        "SELECT r.rolname, p.privilege_type FROM pg_roles r, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) p(privilege_type)"
        " WHERE r.rolname <> 'ootd_owner' AND r.rolname !~ '^pg_' AND NOT r.rolsuper AND has_table_privilege(r.oid, 'ootd.likes', p.privilege_type)"
    ).fetchall()
    assert writers == []  # the API writes likes through ootd.like / ootd.unlike (SECURITY DEFINER)


def test_a_repeated_like_changes_nothing(db):
    user_id, outfit_id = a_user_and_a_new_color_outfit(db)
    assert db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    before = profile(db, user_id)
    assert db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is False
    assert profile(db, user_id) == before  # updated_at included
    assert db.execute("SELECT count(*) FROM ootd.likes WHERE user_id = %s", (user_id,)).fetchone()[0] == 1


@pytest.mark.parametrize("call", ["like", "unlike"])
def test_unknown_user_or_outfit_is_23503_and_changes_nothing(db, call):
    user_id, outfit_id = a_user_and_a_new_color_outfit(db)
    before = profile(db, user_id)
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        db.execute(f"SELECT ootd.{call}(99999999, %s)", (outfit_id,))
    assert caught.value.diag.message_primary == "unknown user 99999999"
    with pytest.raises(errors.ForeignKeyViolation) as caught:
        db.execute(f"SELECT ootd.{call}(%s, 99999999)", (user_id,))
    assert caught.value.diag.message_primary == "unknown outfit 99999999"
    with pytest.raises(errors.ForeignKeyViolation):  # the table's own foreign key, for direct inserts
        db.execute("INSERT INTO ootd.likes (user_id, outfit_id) VALUES (%s, 99999999)", (user_id,))
    assert profile(db, user_id) == before
    assert db.execute("SELECT count(*) FROM ootd.likes").fetchone()[0] == 0


def test_preferred_colors_keep_the_strongest_eight_by_frequency_then_recency(db):
    user_id = db.execute(
        "SELECT id FROM ootd.users WHERE jsonb_array_length(style_dna -> 'preferred_colors') = 2 ORDER BY id LIMIT 1"
    ).fetchone()[0]
    stated = profile(db, user_id)[0]["preferred_colors"]
    # one outfit per color not stated, 9 colors: liked in order, each in its own transaction
    rows = db.execute(
        "SELECT DISTINCT ON (color) color, id FROM ootd.outfits WHERE color <> ALL (%s) ORDER BY color, id", (stated,)
    ).fetchall()[:9]
    assert len(rows) == 9
    for _, outfit_id in rows:
        db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id))
    dna = profile(db, user_id)[0]
    liked = [color for color, _ in rows]
    # all nine liked colors count 1 and beat the stated ones (0.5): the 8 most recent, newest first
    assert dna["preferred_colors"] == liked[::-1][:8]
    assert set(dna["color_affinity"]) == set(liked) | set(stated)
    # a second like of the oldest color makes it the strongest
    second = db.execute(
        "SELECT id FROM ootd.outfits WHERE color = %s AND id <> %s ORDER BY id LIMIT 1", (liked[0], rows[0][1])
    ).fetchone()[0]
    db.execute("SELECT ootd.like(%s, %s)", (user_id, second))
    dna = profile(db, user_id)[0]
    assert dna["preferred_colors"][0] == liked[0] and dna["color_affinity"][liked[0]] == 2
    assert dna["preferred_colors"][1:] == liked[::-1][:7]
    # undo everything: back to the stated list, in stated order
    db.execute("SELECT ootd.unlike(%s, %s)", (user_id, second))
    assert profile(db, user_id)[0]["preferred_colors"] == liked[::-1][:8]
    for _, outfit_id in rows:
        db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id))
    dna = profile(db, user_id)[0]
    assert dna["preferred_colors"] == stated and "color_affinity" not in dna


def test_eight_sessions_liking_for_one_user_lose_nothing(served_url, db):
    user_id, _ = a_user_and_a_new_color_outfit(db)
    dna0, _, _, _, _ = profile(db, user_id)
    outfits = [r[0] for r in db.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 320").fetchall()]
    assert len(outfits) == 320
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def worker(share: list[int], verb: str) -> None:
        try:
            with connect(served_url) as conn:
                barrier.wait()
                for outfit_id in share:
                    assert conn.execute(f"SELECT ootd.{verb}(%s, %s)", (user_id, outfit_id)).fetchone()[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def run(verb: str) -> None:
        threads = [threading.Thread(target=worker, args=(outfits[i::8], verb)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []

    run("like")
    dna, _, _, count, _ = profile(db, user_id)
    assert count == 320
    liked = db.execute(
        "SELECT o.category, o.color FROM ootd.likes l JOIN ootd.outfits o ON o.id = l.outfit_id WHERE l.user_id = %s",
        (user_id,),
    ).fetchall()
    categories = Counter(c for c, _ in liked)
    colors = Counter(c for _, c in liked)
    stated0 = dna0.get("category_affinity", {})
    assert dna["category_affinity"] == {
        k: stated0.get(k, 0) + categories.get(k, 0) for k in set(stated0) | set(categories)
    }
    stated_colors = {c: 0.5 - 0.001 * i for i, c in enumerate(dna0["preferred_colors"])}
    assert set(dna["color_affinity"]) == set(colors) | set(stated_colors)
    for color, strength in dna["color_affinity"].items():
        assert strength == pytest.approx(colors.get(color, 0) + stated_colors.get(color, 0)), color
    assert len(dna["preferred_colors"]) == 8
    assert [dna["color_affinity"][c] for c in dna["preferred_colors"]] == sorted(
        dna["color_affinity"].values(), reverse=True
    )[:8]

    run("unlike")
    dna, _, _, count, _ = profile(db, user_id)
    assert count == 0
    assert dna == dna0  # 640 concurrent likes and unlikes later: the stated profile, verbatim


def test_two_sessions_liking_for_two_users_in_opposite_orders_lose_nothing(served_url, db):
    users = [r[0] for r in db.execute("SELECT id FROM ootd.users ORDER BY id LIMIT 2").fetchall()]
    outfits = [r[0] for r in db.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 120").fetchall()]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def worker(order: list[int], share: list[int]) -> None:
        try:
            with psycopg.connect(served_url, autocommit=True) as conn:
                barrier.wait()
                for outfit_id in share:  # each outfit liked for both users, in opposite user orders
                    for user_id in order:
                        assert conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0]
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [
        threading.Thread(target=worker, args=(users, outfits[0::2])),
        threading.Thread(target=worker, args=(users[::-1], outfits[1::2])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    counts = db.execute("SELECT id, likes_count FROM ootd.users WHERE id = ANY(%s) ORDER BY id", (users,)).fetchall()
    assert [c for _, c in counts] == [120, 120]


def test_liking_a_color_moves_it_up_in_the_next_feed(db):
    # the user's own pool only: the likes below also teach the pool's archetype (issue 27), which lifts all of
    # its outfits above the neighbours' alike, so that a neighbour's category best (served before any
    # category's second) cannot stand between the target and its own pool's items
    db.execute("UPDATE ootd.scoring_weights SET neighbour_pools = false")
    # a user, a color absent from their preferences, present (unvetoed) in their pool
    user_id = db.execute(
        "SELECT id FROM ootd.users WHERE NOT style_rules ?| '{disliked_categories,disliked_colors}' "
        "AND taste IS NOT NULL "
        "ORDER BY id LIMIT 1"
    ).fetchone()[0]
    explain = (
        "SELECT outfit_id, color, rank, color_boost, drawn_from = cluster_id, cluster_id "
        "FROM ootd.feed_explain(%s, %s, 20)"
    )
    before = db.execute(explain, (user_id, NOON)).fetchall()
    dna = profile(db, user_id)[0]
    # like three outfits of a color from pools that are not candidates (so the target itself is not "already
    # liked") and of the served pool's archetype (so the archetype they teach is the target's, issue 27)
    same_archetype = (
        "SELECT o.id FROM ootd.outfits o JOIN ootd.pools p ON p.pool_date = o.pool_date AND p.cluster_id = o.cluster_id "
        "JOIN ootd.pools s ON s.cluster_id = %s AND s.archetype = p.archetype "
        "WHERE o.color = %s AND o.id <> ALL (%s) ORDER BY o.id LIMIT 3"
    )
    candidates = [
        (oid, color, rank, others)
        for oid, color, rank, _, own, cluster in before
        if own and color not in dna.get("preferred_colors", []) and rank is not None and 3 < rank <= 20
        for others in [[r[0] for r in db.execute(same_archetype, (cluster, color, [b[0] for b in before]))]]
        if len(others) == 3
    ]
    assert candidates
    target_outfit, color, rank_before, others = candidates[-1]
    feed_before = [r[0] for r in db.execute("SELECT outfit_id FROM ootd.feed(%s, %s, 20)", (user_id, NOON))]
    for outfit_id in others:
        db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id))
    after = {oid: (rank, boost) for oid, _, rank, boost, *_ in db.execute(explain, (user_id, NOON)).fetchall()}
    assert after[target_outfit][1] > 1  # the color boost now applies
    assert after[target_outfit][0] < rank_before
    feed_after = [r[0] for r in db.execute("SELECT outfit_id FROM ootd.feed(%s, %s, 20)", (user_id, NOON))]
    assert feed_after.index(target_outfit) < feed_before.index(target_outfit)


def test_undoing_a_hundred_likes_restores_the_profile_bit_for_bit(db):
    """A user with likes already (so their learned profile, not the stated one, must come back), 100 more
    likes, then their unlikes in another order: every column as before (README: "exact")."""
    rng = np.random.default_rng(17)
    outfits = [r[0] for r in db.execute("SELECT id FROM ootd.outfits ORDER BY id")]
    users = [
        r[0]
        for r in db.execute(
            "SELECT id FROM ootd.users WHERE style_dna ? 'vibe' AND taste IS NOT NULL ORDER BY id LIMIT 5"
        )
    ]
    columns = STORED_PROFILE
    for user_id in users:
        for outfit_id in rng.choice(outfits, 3, replace=False):
            db.execute("SELECT ootd.like(%s, %s)", (user_id, int(outfit_id)))
        before = db.execute(columns, (user_id,)).fetchone()[0]
        picks = [int(o) for o in rng.choice(outfits, 100, replace=False)]
        picks = [o for o in picks if db.execute("SELECT ootd.like(%s, %s)", (user_id, o)).fetchone()[0]]
        assert len(picks) >= 97 and profile(db, user_id)[3] == 3 + len(picks)
        for outfit_id in rng.permutation(picks):
            db.execute("SELECT ootd.unlike(%s, %s)", (user_id, int(outfit_id)))
        assert db.execute(columns, (user_id,)).fetchone()[0] == before
