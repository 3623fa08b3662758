"""Every writer of ootd.likes learns (the likes triggers), exactly: the stored profile equals the
one the same likes give when replayed one by one through ootd.like.

Each writer runs in a transaction that is rolled back, so all start from the same seeded profiles;
inside one transaction every like gets the same liked_at (now()), as in the replay, so the
preferred colors' ties (latest like, then name) break alike.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import psycopg
import pytest
from psycopg import errors

from tests.test_likes import STORED_PROFILE

#: (user, outfit) likes of 12 users, 6 each (some users' outfits repeat others').
USERS = 12
PER_USER = 6


@pytest.fixture
def db(served_url):
    with psycopg.connect(served_url, autocommit=True) as conn:
        yield conn


def some_likes(conn, seed: int = 7) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    users = [r[0] for r in conn.execute("SELECT id FROM ootd.users ORDER BY id LIMIT %s", (USERS,))]
    outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id")]
    return [(u, int(o)) for u in users for o in rng.choice(outfits, PER_USER, replace=False)]


def profiles(conn, users) -> dict[int, str]:
    return {u: conn.execute(STORED_PROFILE, (u,)).fetchone()[0] for u in sorted(set(users))}


def counts_match_rows(conn) -> bool:
    return conn.execute(
        "SELECT bool_and(u.likes_count = (SELECT count(*) FROM ootd.likes l WHERE l.user_id = u.id)) FROM ootd.users u"
    ).fetchone()[0]


def written(conn, write, likes) -> dict[int, str]:
    """The profiles of the likes' users after `write(conn)`, in a transaction rolled back after."""
    with conn.transaction(force_rollback=True):
        write(conn)
        assert counts_match_rows(conn)
        return profiles(conn, [u for u, _ in likes])


def replayed(conn, likes) -> dict[int, str]:
    def write(c):
        for user_id, outfit_id in likes:
            assert c.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True

    return written(conn, write, likes)


def copy_rows(conn, rows) -> None:
    with conn.cursor().copy("COPY ootd.likes (user_id, outfit_id) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


WRITERS = {
    "one INSERT per like": lambda c, likes: [
        c.execute("INSERT INTO ootd.likes (user_id, outfit_id) VALUES (%s, %s)", like) for like in likes
    ],
    "one multi-row INSERT": lambda c, likes: c.execute(
        "INSERT INTO ootd.likes (user_id, outfit_id) SELECT * FROM unnest(%s::bigint[], %s::bigint[])",
        ([u for u, _ in likes], [o for _, o in likes]),
    ),
    "COPY": lambda c, likes: copy_rows(c, likes),
    "COPY, then ON CONFLICT DO NOTHING repeats": lambda c, likes: (
        copy_rows(c, likes[::2]),
        c.execute(
            "INSERT INTO ootd.likes (user_id, outfit_id) SELECT * FROM unnest(%s::bigint[], %s::bigint[]) "
            "ON CONFLICT DO NOTHING",
            ([u for u, _ in likes] * 2, [o for _, o in likes] * 2),
        ),
    ),
    "ootd.like and COPY mixed": lambda c, likes: (
        [c.execute("SELECT ootd.like(%s, %s)", like) for like in likes[1::2]],
        copy_rows(c, likes[0::2]),
    ),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_learns_what_ootd_like_learns(db, writer):
    likes = some_likes(db)
    expected = replayed(db, likes)
    assert written(db, lambda c: WRITERS[writer](c, likes), likes) == expected


def test_delete_and_update_of_likes_unlearn_what_they_take_away(db):
    likes = some_likes(db)
    extra = [(u, o) for (u, o) in some_likes(db, seed=8) if (u, o) not in set(likes)]
    expected = replayed(db, likes)

    def delete(c):  # like more, then DELETE the extra ones in one statement
        copy_rows(c, likes + extra)
        c.execute(
            "DELETE FROM ootd.likes l USING unnest(%s::bigint[], %s::bigint[]) AS x(u, o) "
            "WHERE l.user_id = x.u AND l.outfit_id = x.o",
            ([u for u, _ in extra], [o for _, o in extra]),
        )

    assert written(db, delete, likes) == expected

    def update(c):  # like the extra ones, then turn each into one of the likes by UPDATE
        pairs = list(zip(sorted(set(extra)), sorted(likes)))
        assert len(pairs) == len(likes)
        copy_rows(c, [e for e, _ in pairs])
        c.execute(
            "UPDATE ootd.likes l SET user_id = x.nu, outfit_id = x.no "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS x(u, o, nu, no) "
            "WHERE l.user_id = x.u AND l.outfit_id = x.o",
            tuple(list(col) for col in zip(*[(e[0], e[1], n[0], n[1]) for e, n in pairs])),
        )

    assert written(db, update, likes) == expected


def test_like_then_unlike_is_bit_identical_on_200_users(db):
    """200 users, half of them with likes already: one like and its unlike leave every stored column
    as it was, as text (numeric scales, float bits); the README says "exact"."""
    rng = np.random.default_rng(26)
    users = [r[0] for r in db.execute("SELECT id FROM ootd.users ORDER BY id LIMIT 200")]
    outfits = [r[0] for r in db.execute("SELECT id FROM ootd.outfits ORDER BY id")]
    assert len(users) == 200
    copy_rows(db, [(u, int(o)) for u in users[::2] for o in rng.choice(outfits, 5, replace=False)])
    before = profiles(db, users)
    liked = db.execute("SELECT user_id, array_agg(outfit_id) FROM ootd.likes GROUP BY 1").fetchall()
    taken = dict(liked)
    for user_id in users:
        outfit_id = next(int(o) for o in rng.permutation(outfits) if o not in taken.get(user_id, []))
        assert db.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
        assert db.execute(STORED_PROFILE, (user_id,)).fetchone()[0] != before[user_id]
        assert db.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone()[0] is True
    assert profiles(db, users) == before


def test_eight_connections_liking_one_user_equal_a_serial_replay(served_url, db):
    """8 connections x 40 likes for one user: every like counted, and the profile equals the one a
    serial replay of the same rows (same liked_at) gives."""
    user_id = db.execute("SELECT id FROM ootd.users WHERE taste IS NOT NULL ORDER BY id LIMIT 1").fetchone()[0]
    outfits = [r[0] for r in db.execute("SELECT id FROM ootd.outfits ORDER BY id DESC LIMIT 320")]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def worker(share: list[int]) -> None:
        try:
            with psycopg.connect(served_url, autocommit=True) as conn:
                barrier.wait()
                for outfit_id in share:
                    conn.execute("INSERT INTO ootd.likes (user_id, outfit_id) VALUES (%s, %s)", (user_id, outfit_id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(outfits[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    concurrent = db.execute(STORED_PROFILE, (user_id,)).fetchone()[0]
    rows = db.execute(
        "SELECT outfit_id, liked_at FROM ootd.likes WHERE user_id = %s ORDER BY liked_at, outfit_id", (user_id,)
    ).fetchall()
    assert (
        len(rows) == 320
        and db.execute("SELECT likes_count FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0] == 320
    )
    with db.transaction(force_rollback=True):
        db.execute("DELETE FROM ootd.likes WHERE user_id = %s", (user_id,))
        assert db.execute("SELECT likes_count, stated_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone() == (
            0,
            None,
        )
        for outfit_id, liked_at in rows:
            db.execute("INSERT INTO ootd.likes VALUES (%s, %s, %s)", (user_id, outfit_id, liked_at))
        assert db.execute(STORED_PROFILE, (user_id,)).fetchone()[0] == concurrent


def test_truncate_restores_every_stated_profile(db):
    likes = some_likes(db)
    stated = profiles(db, [u for u, _ in likes])
    copy_rows(db, likes)
    assert profiles(db, [u for u, _ in likes]) != stated
    db.execute("TRUNCATE ootd.likes")
    assert profiles(db, [u for u, _ in likes]) == stated
    assert (
        db.execute("SELECT count(*) FROM ootd.users WHERE likes_count > 0 OR stated_dna IS NOT NULL").fetchone()[0] == 0
    )


def test_a_stated_vibe_edited_with_likes_counts_at_once_and_comes_back_alone(db):
    """ootd.put_user with likes: the stated vibe changes, the served one is its mean with the likes'
    at once; with the last unlike the edited stated profile comes back."""
    likes = some_likes(db)[:3]
    user_id = likes[0][0]
    copy_rows(db, likes)
    vibes = [
        r[0] for r in db.execute("SELECT vibe::numeric FROM ootd.outfits WHERE id = ANY(%s)", ([o for _, o in likes],))
    ]
    db.execute("SELECT ootd.put_user(%s, p_style_dna => '{\"vibe\": 0.9}')", (user_id,))
    served, stated = db.execute(
        "SELECT (style_dna ->> 'vibe')::numeric, stated_dna ->> 'vibe' FROM ootd.users WHERE id = %s", (user_id,)
    ).fetchone()
    assert stated == "0.9"
    assert float(served) == pytest.approx((0.9 + float(sum(vibes))) / 4, abs=1e-12)
    db.execute("DELETE FROM ootd.likes WHERE user_id = %s", (user_id,))
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    assert dna["vibe"] == 0.9 and "color_affinity" not in dna


def test_bad_likes_change_nothing(db):
    likes = some_likes(db)[:4]
    before = profiles(db, [u for u, _ in likes])
    rows = likes + [(likes[0][0], 99999999)]
    with pytest.raises(errors.ForeignKeyViolation):  # one unknown outfit: the whole COPY goes, learning too
        copy_rows(db, rows)
    assert profiles(db, [u for u, _ in likes]) == before
    assert db.execute("SELECT count(*) FROM ootd.likes").fetchone()[0] == 0
    with pytest.raises(errors.CheckViolation) as caught:  # the learning state is the trigger's alone
        db.execute("UPDATE ootd.users SET likes_count = 3 WHERE id = %s", (likes[0][0],))
    assert caught.value.diag.constraint_name == "users_learning_state"


def test_likes_of_a_deleted_user_go_with_it(db):
    likes = some_likes(db)[:PER_USER]
    user_id = likes[0][0]
    copy_rows(db, likes)
    with db.transaction(force_rollback=True):
        db.execute("DELETE FROM ootd.users WHERE id = %s", (user_id,))  # cascades to the likes: no error
        assert db.execute("SELECT count(*) FROM ootd.likes WHERE user_id = %s", (user_id,)).fetchone()[0] == 0


def test_a_backfill_with_old_times_ranks_colors_by_the_latest_like(db):
    """COPY with explicit liked_at, rows out of time order: preferred_colors ties break by the latest
    like (then name), whatever the order of the rows."""
    user_id, stated = db.execute(
        "SELECT id, style_dna -> 'preferred_colors' FROM ootd.users ORDER BY id LIMIT 1"
    ).fetchone()
    by_color = db.execute(
        "SELECT DISTINCT ON (color) color, id FROM ootd.outfits WHERE NOT %s::jsonb ? color ORDER BY color, id LIMIT 3",
        (psycopg.types.json.Jsonb(stated),),
    ).fetchall()
    assert len(by_color) == 3
    data = io.StringIO()
    for day, (_, outfit_id) in zip((3, 1, 2), by_color):  # liked on Dec 3, 1, 2
        data.write(f"{user_id}\t{outfit_id}\t2026-12-0{day} 12:00+00\n")
    with db.cursor().copy("COPY ootd.likes (user_id, outfit_id, liked_at) FROM STDIN") as copy:
        copy.write(data.getvalue())
    dna = db.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
    colors = [c for c, _ in by_color]
    assert dna["preferred_colors"][:3] == [colors[0], colors[2], colors[1]]  # Dec 3, Dec 2, Dec 1
