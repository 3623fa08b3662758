"""`ootd seed`: deterministic, realistic, never duplicating."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from batch.seed import seed_users
from db.connect import DatabaseError, connect
from db.server import EmbeddedServer
from tests.conftest import run_cli

FINGERPRINT = (
    "SELECT md5(string_agg(concat_ws('|', id, city, timezone, style_dna::text, style_rules::text, taste::text), "
    "E'\\n' ORDER BY id)) AS digest, count(*) AS n FROM ootd.users"
)


def seed(url: str, users: int, seed_value: int, **options):
    with connect(url) as c:
        return seed_users(c, users, seed_value, **options)


def fingerprint(conn: psycopg.Connection, where: str = "") -> dict:
    return conn.execute(FINGERPRINT.replace("FROM ootd.users", f"FROM ootd.users {where}")).fetchone()


@pytest.fixture(scope="module")
def population(pg_server, template_url):
    """10,000 users with seed 42 in their own database (shared read-only by this module)."""
    from tests.conftest import TEMPLATE, create_database, drop_database

    name = create_database(pg_server, TEMPLATE)
    url = pg_server.dsn(name)
    seed(url, 10_000, 42)
    with psycopg.connect(url) as conn:
        yield conn
    drop_database(pg_server, name)


def test_same_seed_gives_identical_users_in_two_databases(db_url, pg_server, template_url):
    from tests.conftest import TEMPLATE, create_database, drop_database

    other = create_database(pg_server, TEMPLATE)
    try:
        seed(db_url, 3_000, 7)
        seed(pg_server.dsn(other), 3_000, 7)
        with psycopg.connect(db_url) as a, psycopg.connect(pg_server.dsn(other)) as b:
            fa, fb = a.execute(FINGERPRINT).fetchone(), b.execute(FINGERPRINT).fetchone()
        assert fa == fb and fa[1] == 3_000
    finally:
        drop_database(pg_server, other)


def test_different_seeds_give_different_users(db_url):
    seed(db_url, 500, 1)
    with psycopg.connect(db_url) as conn:
        first = conn.execute(FINGERPRINT).fetchone()
        conn.execute("DELETE FROM ootd.users")
        conn.commit()
    seed(db_url, 500, 2)
    with psycopg.connect(db_url) as conn:
        assert conn.execute(FINGERPRINT).fetchone()[0] != first[0]


def test_rerun_creates_nothing_and_growing_keeps_existing_users(db_url):
    assert seed(db_url, 2_000, 5).created == 2_000
    with psycopg.connect(db_url) as conn:
        before = conn.execute(FINGERPRINT).fetchone()
    again = seed(db_url, 2_000, 5)
    assert (again.created, again.existing) == (0, 2_000)
    grown = seed(db_url, 12_345, 5)
    assert (grown.created, grown.existing) == (10_345, 2_000)
    with psycopg.connect(db_url) as conn:
        assert (
            conn.execute(FINGERPRINT.replace("FROM ootd.users", "FROM ootd.users WHERE id <= 2000")).fetchone()
            == before
        )
        assert conn.execute("SELECT count(*), min(id), max(id) FROM ootd.users").fetchone() == (12_345, 1, 12_345)


def test_partial_overlap_fills_only_the_gaps(db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT ootd.put_user(5, 'Oslo')")
        conn.execute("SELECT ootd.put_user(900, 'Oslo')")
    result = seed(db_url, 1_000, 5)
    assert (result.created, result.existing) == (998, 2)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT city FROM ootd.users WHERE id IN (5, 900)").fetchall() == [("Oslo",), ("Oslo",)]
        assert conn.execute("SELECT count(*) FROM ootd.users").fetchone()[0] == 1_000


def test_population_is_realistically_skewed(population):
    c = population
    n = c.execute("SELECT count(*) FROM ootd.users").fetchone()[0]
    assert n == 10_000
    cities, zones = c.execute("SELECT count(DISTINCT city), count(DISTINCT timezone) FROM ootd.users").fetchone()
    assert cities >= 40 and zones >= 20
    for tz in ("Asia/Kolkata", "Australia/Sydney", "America/Los_Angeles", "Asia/Kathmandu"):
        assert c.execute("SELECT count(*) FROM ootd.users WHERE timezone = %s", (tz,)).fetchone()[0] > 0, tz
    assert c.execute("SELECT count(*) FROM ootd.users WHERE city = 'Torrance'").fetchone()[0] > 0

    archetypes = dict(
        c.execute(
            "SELECT style_dna->>'archetype', count(*) FROM ootd.users WHERE style_dna ? 'archetype' GROUP BY 1"
        ).fetchall()
    )
    assert len(archetypes) == 10
    assert archetypes["Minimal"] > 3 * archetypes["Glam"]  # skewed, not uniform

    vetoes = c.execute("SELECT count(*) FROM ootd.users WHERE style_rules ? 'disliked_categories'").fetchone()[0]
    assert 0.22 * n <= vetoes <= 0.29 * n
    color_vetoes = c.execute("SELECT count(*) FROM ootd.users WHERE style_rules ? 'disliked_colors'").fetchone()[0]
    assert 0.05 * n <= color_vetoes < vetoes
    veto_all = c.execute(
        "SELECT count(*) FROM ootd.users WHERE jsonb_array_length(style_rules->'disliked_categories') "
        "= (SELECT count(*) FROM ootd.categories)"
    ).fetchone()[0]
    assert 0.005 * n <= veto_all <= 0.02 * n
    assert c.execute("SELECT count(*) FROM ootd.users WHERE taste IS NULL").fetchone()[0] == 0
    assert (
        c.execute(
            "SELECT count(*) FROM ootd.users WHERE jsonb_array_length(style_dna->'preferred_colors') = 0"
        ).fetchone()[0]
        == 0
    )


def test_taste_vectors_cluster_by_archetype(population):
    """Users of one archetype are closer to each other than to another archetype's."""
    c = population
    same, other = c.execute("""
        WITH a AS (SELECT avg(taste) AS v FROM ootd.users WHERE style_dna->>'archetype' = 'Minimal'),
             b AS (SELECT avg(taste) AS v FROM ootd.users WHERE style_dna->>'archetype' = 'Glam')
        SELECT avg(1 - (u.taste <=> a.v)) FILTER (WHERE u.style_dna->>'archetype' = 'Minimal'),
               avg(1 - (u.taste <=> a.v)) FILTER (WHERE u.style_dna->>'archetype' = 'Glam')
        FROM ootd.users u, a, b""").fetchone()
    assert same > other + 0.2


def test_cli_seed_reports_and_rejects_bad_counts(db_url):
    ok = run_cli("seed", "--users", "300", "--seed", "3", env={"DATABASE_URL": db_url})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("seeded 300 new users (0 already present)")
    bad = run_cli("seed", "--users", "-5", env={"DATABASE_URL": db_url})
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines()[-1]
        == "ootd seed: error: argument --users: expected a positive integer, got '-5'"
    )


def test_cli_seed_refuses_more_users_than_the_maximum_before_connecting(db_url, tmp_path):
    for users, shown in (("99999999999999999999", "99,999,999,999,999,999,999"), ("10000001", "10,000,001")):
        bad = run_cli("seed", "--users", users, env={"DATABASE_URL": db_url}, timeout=60)
        assert bad.returncode == 1
        assert bad.stderr.strip() == f"ootd: error: --users must be at most 10,000,000, got {shown}"
    negative_seed = run_cli("seed", "--users", "10", "--seed", "-1", env={"DATABASE_URL": db_url}, timeout=60)
    assert negative_seed.returncode == 1
    assert negative_seed.stderr.strip() == "ootd: error: --seed must be a non-negative integer, got -1"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.users").fetchone()[0] == 0
    # refused before anything is started: no embedded server appears in the working directory
    try:
        nowhere = run_cli("seed", "--users", "10000001", cwd=tmp_path, timeout=60)
        assert nowhere.returncode == 1 and not (tmp_path / ".ootd").exists(), nowhere.stderr
    finally:
        if (tmp_path / ".ootd" / "pgdata" / "PG_VERSION").exists():
            EmbeddedServer((tmp_path / ".ootd").resolve()).stop("immediate")


GATE = 4242  # advisory lock key the test trigger waits on


def test_seed_commits_batch_by_batch_so_a_killed_seed_keeps_them_and_resumes(db_url, population):
    """A seed killed in its fourth batch keeps three committed batches and leaves one batch of dead rows.

    A test-only statement trigger makes the fourth batch's COPY (all its rows
    written, not committed) wait on an advisory lock the test holds; the test
    then terminates that backend, as a killed client or server would.
    """
    batch, users = 1_000, 10_000
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(f"""
            CREATE FUNCTION public.hold_fourth_batch() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT count(*) FROM ootd.users) > 3 * {batch} THEN
                    PERFORM pg_advisory_xact_lock({GATE});
                END IF;
                RETURN NULL;
            END $$""")
        admin.execute(
            "CREATE TRIGGER hold_fourth_batch AFTER INSERT ON ootd.users "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.hold_fourth_batch()"
        )
        admin.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        errors: list[BaseException] = []

        def seed_in_batches() -> None:
            try:
                seed(db_url, users, 42, batch_size=batch)
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                errors.append(exc)

        worker = threading.Thread(target=seed_in_batches)
        worker.start()
        try:
            deadline = time.monotonic() + 120
            while (
                waiting := admin.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = 0 AND objid = %s AND NOT granted",
                    (GATE,),
                ).fetchone()
            ) is None:
                assert worker.is_alive() and time.monotonic() < deadline, errors
                time.sleep(0.02)
            assert admin.execute("SELECT pg_terminate_backend(%s, 60000)", waiting).fetchone()[0]
        finally:
            worker.join(120)
        assert len(errors) == 1 and isinstance(errors[0], DatabaseError), errors

        assert admin.execute("SELECT count(*), min(id), max(id) FROM ootd.users").fetchone() == (
            3 * batch,
            1,
            3 * batch,
        )
        admin.execute("SELECT pg_stat_clear_snapshot()")
        inserted = admin.execute(
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'ootd.users'::regclass"
        ).fetchone()[0]
        assert inserted - 3 * batch == batch  # the dead rows: the one batch in flight, no more
        admin.execute("DROP TRIGGER hold_fourth_batch ON ootd.users")
        admin.execute("SELECT pg_advisory_unlock(%s)", (GATE,))

    resumed = seed(db_url, users, 42, batch_size=batch)
    assert (resumed.created, resumed.existing) == (users - 3 * batch, 3 * batch)
    with psycopg.connect(db_url) as conn:
        # the same users as one uninterrupted seed with the default batch size
        assert fingerprint(conn) == fingerprint(population)
