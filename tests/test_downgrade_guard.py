"""A downgrade that would destroy data refuses unless the DBA says so (migrations/guard.py)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import SEEDED_USERS, run_cli
from tests.test_migrations import alembic, schema_dump


def said(result) -> str:
    """What `alembic` printed: FAILED: ... goes to stdout, the guard's notices to stderr."""
    return result.stdout + result.stderr


def state(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        has_schema = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ootd'").fetchone()[0]
        users = conn.execute("SELECT count(*) FROM ootd.users").fetchone()[0] if has_schema else None
    return version, users


def head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db import REPO_ROOT

    return ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini"))).get_current_head()


def test_downgrade_base_of_a_seeded_database_refuses_and_changes_nothing(seeded_url: str):
    before = schema_dump(seeded_url)
    down = alembic(seeded_url, "downgrade", "base")
    assert down.returncode != 0
    assert (  # the seeded users and their hidden truth (0018b, ootd_truth.users)
        f"downgrade {head()} -> base would destroy data: ootd_truth.users ({SEEDED_USERS:,} rows), "
        f"ootd.users ({SEEDED_USERS:,} rows)"
    ) in said(down)
    assert "nothing was changed" in said(down) and "-x allow-data-loss=true" in said(down)
    assert "Traceback" not in said(down)
    # reference tables hold only what the migrations install: not data to protect
    assert "ootd.cities" not in said(down) and "ootd.llm_prices" not in said(down)
    assert "ootd.scoring_weights" not in said(down)  # its updated_at, a DEFAULT now(), is the install's time
    assert state(seeded_url) == ([(head(),)], SEEDED_USERS)
    assert schema_dump(seeded_url) == before


def test_allow_data_loss_downgrades_and_says_what_it_dropped(seeded_url: str):
    down = alembic(seeded_url, "-x", "allow-data-loss=true", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert f"dropping ootd_truth.users ({SEEDED_USERS:,} rows), ootd.users ({SEEDED_USERS:,} rows)" in said(down)
    assert state(seeded_url) == ([], None)


def test_allow_data_loss_must_be_true_or_false(seeded_url: str):
    down = alembic(seeded_url, "-x", "allow-data-loss=maybe", "downgrade", "base")
    assert down.returncode != 0
    assert "-x allow-data-loss expects true or false, got 'maybe'" in said(down)
    assert state(seeded_url) == ([(head(),)], SEEDED_USERS)


def test_a_database_without_data_downgrades_without_the_option(db_url: str):
    down = alembic(db_url, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert state(db_url) == ([], None)


def reference_state(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return tuple(
            conn.execute(f"SELECT t::text FROM ootd.{table} t ORDER BY 1").fetchall()
            for table in ("cities", "llm_prices", "scoring_weights")
        )


def test_edited_reference_rows_are_data(db_url: str):
    """Issue 25 item 8: reference rows are compared by content, not counted.  A city added (Havana),
    one deleted (Torrance), a price edited: as many rows as before, and each is named as lost."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT ootd.add_city('Havana', 'America/Havana', 23.1136, -82.3666, 'CU', 2100)")
        conn.execute("DELETE FROM ootd.cities WHERE name = 'Torrance'")
        conn.execute("UPDATE ootd.llm_prices SET prompt_usd_per_1m = 99 WHERE model = 'gpt-4o-mini'")
        installed = conn.execute("SELECT count(*) FROM ootd.cities").fetchone()[0]
    before, schema = reference_state(db_url), schema_dump(db_url)
    env = {"DATABASE_URL": db_url}

    refused = run_cli("migrate", "--revision", "base", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"ootd: error: downgrade {head()} -> base would destroy data: ")
    assert (
        f"ootd.cities ({installed} rows, not as the migration reinstalls them: 1 added (Havana), 1 deleted (Torrance))"
    ) in line
    assert "ootd.llm_prices (6 rows, not as the migration reinstalls them: 1 edited (gpt-4o-mini))" in line
    assert "ootd.scoring_weights" not in line and "ootd.archetypes" not in line  # untouched: reinstalled as they are
    assert "nothing was changed" in line and "--allow-data-loss" in line
    assert state(db_url) == ([(head(),)], 0)
    assert reference_state(db_url) == before and schema_dump(db_url) == schema

    down = run_cli("migrate", "--revision", "base", "--allow-data-loss", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout == "downgraded to base\n"
    assert f"downgrade {head()} -> base: dropping " in down.stderr
    assert "1 added (Havana), 1 deleted (Torrance)" in down.stderr and "1 edited (gpt-4o-mini)" in down.stderr
    assert state(db_url) == ([], None)


def test_tuned_scoring_weights_are_data(db_url: str):
    """The one row analysts tune: same count, other content (the docstring's old blind spot)."""
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE ootd.scoring_weights SET cosine = 0.75")
    down = alembic(db_url, "downgrade", "base")
    assert down.returncode != 0
    assert "ootd.scoring_weights (1 row, not as the migration reinstalls them: 1 edited (true))" in said(down)
    assert state(db_url) == ([(head(),)], 0)


def test_a_dropped_column_loses_only_values_its_upgrade_would_not_put_back(seeded_url: str):
    # 0004 adds users.likes_count (DEFAULT 0) and taste_norm (DEFAULT 1): seeded users hold just that
    # (their hidden truth, 0018b's ootd_truth.users, is data: emptied first)
    with psycopg.connect(seeded_url) as conn:
        conn.execute("DELETE FROM ootd_truth.users")
    down = alembic(seeded_url, "downgrade", "0003")
    assert down.returncode == 0, down.stderr
    assert state(seeded_url) == ([("0003",)], SEEDED_USERS)


@pytest.fixture
def liked_url(served_url: str) -> str:
    """The served database, where users 1..3 liked an outfit each (likes_count, taste_norm learned)."""
    with psycopg.connect(served_url) as conn:
        outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 3")]
        for user_id, outfit_id in enumerate(outfits, start=1):
            conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id))
    return served_url


def test_ootd_migrate_to_an_older_revision_refuses_then_downgrades_with_allow_data_loss(liked_url: str):
    env = {"DATABASE_URL": liked_url}
    refused = run_cli("migrate", "--revision", "0003", env=env)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()  # one line, no traceback
    assert line.startswith(
        f"ootd: error: downgrade {head()} -> 0003 would destroy data: "
        f"ootd_truth.users ({SEEDED_USERS:,} rows), column ootd.users."
    )
    # 0017's stated taste (its upgrade would put it back only to within 0014's rounding) and 0004's
    # likes_count
    for column in ("stated_taste", "stated_taste_norm", "likes_count"):
        assert f"column ootd.users.{column} (3 values)" in line, column
    assert "--allow-data-loss" in line
    assert state(liked_url) == ([(head(),)], SEEDED_USERS)

    down = run_cli("migrate", "--revision", "0003", "--allow-data-loss", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout == "downgraded to 0003\n"
    assert (
        f"dropping ootd_truth.users ({SEEDED_USERS:,} rows), column ootd.users.stated_taste (3 values)" in down.stderr
    )
    assert "column ootd.users.likes_count (3 values)" in down.stderr
    assert state(liked_url) == ([("0003",)], SEEDED_USERS)
    with psycopg.connect(liked_url) as conn:  # the likes themselves (0001's table) are kept
        assert conn.execute("SELECT count(*) FROM ootd.likes").fetchone()[0] == 3

    up = run_cli("migrate", env=env)
    assert up.returncode == 0, up.stderr
    assert up.stdout == "migrated to head\n"
    assert state(liked_url) == ([(head(),)], SEEDED_USERS)


def test_ootd_migrate_base_names_the_tables_it_would_empty(liked_url: str):
    refused = run_cli("migrate", "--revision", "base", env={"DATABASE_URL": liked_url})
    assert refused.returncode == 1
    for what in (
        f"ootd.users ({SEEDED_USERS:,} rows)",
        "ootd.likes (3 rows)",
        "ootd.pools (",
        "ootd.outfits (",
        "ootd.llm_calls (",
    ):
        assert what in refused.stderr
    assert "ootd.pool_cache" not in refused.stderr and "ootd.feed_memo" not in refused.stderr  # UNLOGGED caches
    assert "column ootd.users" not in refused.stderr  # the whole table is named instead
    assert state(liked_url) == ([(head(),)], SEEDED_USERS)


def test_the_measure_is_generic_and_falls_back_to_counting_everything(db_url: str):
    """Any schema, any step: only what the upgrade puts back is forgiven; without a key or an upgrade, nothing."""
    from migrations.guard import step_losses

    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("""
            CREATE SCHEMA scratch;
            CREATE TABLE scratch.keyed (id int PRIMARY KEY, note text, n int DEFAULT 7);
            INSERT INTO scratch.keyed VALUES (1, 'a', 7), (2, NULL, 8), (3, 'c', 7);
            CREATE TABLE scratch.bare (a int, note text);
            INSERT INTO scratch.bare VALUES (1, 'x'), (2, 'y'), (3, NULL);
            CREATE TABLE scratch.gone (a int);
            INSERT INTO scratch.gone VALUES (1), (2);
            CREATE UNLOGGED TABLE scratch.cache AS SELECT 1 AS x;""")

        def down() -> None:
            cur.execute(
                "ALTER TABLE scratch.keyed DROP COLUMN note, DROP COLUMN n; "
                "ALTER TABLE scratch.bare DROP COLUMN note; DROP TABLE scratch.gone, scratch.cache"
            )

        def up() -> None:
            cur.execute(
                "ALTER TABLE scratch.keyed ADD COLUMN note text, ADD COLUMN n int DEFAULT 7; "
                "ALTER TABLE scratch.bare ADD COLUMN note text; CREATE TABLE scratch.gone (a int); "
                "INSERT INTO scratch.gone VALUES (1); CREATE UNLOGGED TABLE scratch.cache (x int)"
            )

        def broken_up() -> None:
            cur.execute("SELECT 1 / 0")

        assert sorted(map(str, step_losses(cur, down, up))) == [
            "column scratch.bare.note (2 values)",  # no primary key: every non-NULL value
            "column scratch.keyed.n (1 value)",  # the two 7s come back as the DEFAULT
            "column scratch.keyed.note (2 values)",
            "scratch.gone (2 rows, not as the migration reinstalls them: 1 added)",  # no key: rows as a multiset
        ]
        assert sorted(map(str, step_losses(cur, down, broken_up))) == [
            "column scratch.bare.note (2 values)",
            "column scratch.keyed.n (3 values)",
            "column scratch.keyed.note (2 values)",
            "scratch.gone (2 rows)",
        ]
        # measuring changed nothing
        kept = cur.execute("SELECT count(*) FROM scratch.keyed WHERE n IS NOT NULL AND note IS NOT NULL").fetchone()
        assert kept == (2,)
        assert cur.execute("SELECT count(*) FROM scratch.cache").fetchone() == (1,)
        assert cur.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'ootd_guard_stash%'").fetchone() == (0,)

        # reinstalled rows are compared by content through the primary key; what the install generates
        # anew (an identity, a DEFAULT now() or session_user) is not content
        cur.execute("""
            CREATE TABLE scratch.ref (id int PRIMARY KEY, label text, at timestamptz DEFAULT now(),
                                      by text DEFAULT session_user, serial bigint GENERATED ALWAYS AS IDENTITY);
            INSERT INTO scratch.ref (id, label, at, by) VALUES
                (1, 'one', '2001-01-01', 'someone'), (2, 'two', '2001-01-01', 'someone'),
                (4, 'four', '2001-01-01', 'someone'), (5, 'five', '2001-01-01', 'someone');""")

        def down_ref() -> None:
            cur.execute("DROP TABLE scratch.ref")

        def up_ref() -> None:
            cur.execute(
                "CREATE TABLE scratch.ref (id int PRIMARY KEY, label text, at timestamptz DEFAULT now(), "
                "by text DEFAULT session_user, serial bigint GENERATED ALWAYS AS IDENTITY); "
                "INSERT INTO scratch.ref (id, label) VALUES (1, 'one'), (2, 'TWO'), (3, 'three')"
            )

        assert list(map(str, step_losses(cur, down_ref, up_ref))) == [
            "scratch.ref (4 rows, not as the migration reinstalls them: 2 added (4, 5), 1 edited (2), 1 deleted (3))"
        ]
        cur.execute("DELETE FROM scratch.ref WHERE id IN (4, 5); UPDATE scratch.ref SET label = 'TWO' WHERE id = 2")
        cur.execute("INSERT INTO scratch.ref (id, label, at, by) VALUES (3, 'three', '2002-02-02', 'another')")
        assert step_losses(cur, down_ref, up_ref) == []  # the same content: nothing lost


def test_derived_tables_are_not_data(served_url: str):
    """ootd.served_feeds and ootd.serving_inputs (0020) are computed from the other tables ("Derived:" in
    their comments): a downgrade drops them, rows and all, without the option."""
    with psycopg.connect(served_url) as conn:
        conn.execute("UPDATE ootd.scoring_weights SET cosine = cosine")  # the version moves on
        rows = conn.execute("SELECT count(*) FROM ootd.served_feeds").fetchone()[0]
    assert rows > 0
    down = alembic(served_url, "downgrade", "0019")
    assert down.returncode == 0, down.stderr
    with psycopg.connect(served_url) as conn:
        assert conn.execute(
            "SELECT to_regclass('ootd.served_feeds'), to_regclass('ootd.serving_inputs')"
        ).fetchone() == (
            None,
            None,
        )
