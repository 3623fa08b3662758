"""Revision 0017 on a database with likes: users are re-learned from their likes rows, including
those 0014..0016 never learned (a direct INSERT), and keep the stated profile they had."""

from __future__ import annotations

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from tests.conftest import run_cli
from tests.test_likes import STORED_PROFILE
from tests.test_migrations import alembic

STATED = "SELECT style_dna, taste FROM ootd.users WHERE id = %s"


def test_upgrade_relearns_every_like_and_keeps_the_stated_profile(empty_db_url: str):
    url = empty_db_url
    assert alembic(url, "upgrade", "0016").returncode == 0
    env = {"DATABASE_URL": url}
    for args in (("seed", "--users", "20"), ("nightly",)):
        done = run_cli(*args, env=env)
        assert done.returncode == 0, done.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 6")]
        stated = {u: conn.execute(STATED, (u,)).fetchone() for u in (1, 2, 3)}
        for outfit_id in outfits[:3]:  # user 1: learned by 0016's ootd.like
            conn.execute("SELECT ootd.like(1, %s)", (outfit_id,))
        for outfit_id in outfits[3:5]:  # user 2: a direct INSERT, which 0016 did not learn
            conn.execute("INSERT INTO ootd.likes (user_id, outfit_id) VALUES (2, %s)", (outfit_id,))
        conn.execute("SELECT ootd.like(3, %s)", (outfits[5],))  # user 3: liked, then the like taken back
        conn.execute("SELECT ootd.unlike(3, %s)", (outfits[5],))
        assert conn.execute("SELECT likes_count FROM ootd.users WHERE id = 2").fetchone()[0] == 0

    upgraded = run_cli("migrate", env=env)
    assert upgraded.returncode == 0, upgraded.stderr

    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        counts = conn.execute("SELECT id, likes_count FROM ootd.users WHERE id <= 3 ORDER BY id").fetchall()
        assert counts == [(1, 3), (2, 2), (3, 0)]
        # user 2 never learned: its stated profile is its profile before, exactly, and what it has
        # learned is what a replay of its likes teaches
        dna, taste = conn.execute("SELECT stated_dna, stated_taste FROM ootd.users WHERE id = 2").fetchone()
        assert (dna, taste.to_text()) == (stated[2][0], stated[2][1].to_text())
        for user_id in (1, 2):
            now = conn.execute(STORED_PROFILE, (user_id,)).fetchone()[0]
            with conn.transaction(force_rollback=True):
                rows = conn.execute(
                    "DELETE FROM ootd.likes WHERE user_id = %s RETURNING outfit_id, liked_at", (user_id,)
                ).fetchall()
                for outfit_id, liked_at in rows:
                    conn.execute("INSERT INTO ootd.likes VALUES (%s, %s, %s)", (user_id, outfit_id, liked_at))
                assert conn.execute(STORED_PROFILE, (user_id,)).fetchone()[0] == now
        # user 1's stated profile is 0016's profile with its 3 likes taken back by 0016's arithmetic:
        # colors and categories exactly, the means and taste to within its rounding
        dna, taste = conn.execute("SELECT stated_dna, stated_taste FROM ootd.users WHERE id = 1").fetchone()
        means = ("vibe", "trend", "dare")
        assert {k: v for k, v in dna.items() if k not in means} == {
            k: v for k, v in stated[1][0].items() if k not in means
        }
        for key in means:
            assert abs(dna[key] - stated[1][0][key]) < 1e-9, key
        assert np.abs(taste.to_numpy() - stated[1][1].to_numpy()).max() < 1e-4
        # user 3 liked and unliked before: nothing to learn, its profile as stated (0016 restored it)
        assert conn.execute("SELECT stated_dna, stated_taste FROM ootd.users WHERE id = 3").fetchone() == (None, None)
