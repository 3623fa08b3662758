"""Simulated users' hidden truth (schema ootd_truth, issue 27): written by `ootd seed` for the users it
creates and only for them, of which ootd.users is a noisy, partial view; read by no ranking, scoring,
learning or evaluation-oracle function and by no role but its owner; the utility and like model as
documented (docs/evaluation.md, "Simulated users")."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import psycopg
import pytest
from psycopg.rows import tuple_row

from batch.seed import seed_users
from db.connect import connect
from tests.conftest import SERVED_DAY, TEMPLATE, create_database, drop_database

TRUTH_FINGERPRINT = (
    "SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.user_id)) AS digest, count(*) AS n FROM ootd_truth.users t"
)


def seed(url: str, users: int, seed_value: int, **options):
    with connect(url) as c:
        return seed_users(c, users, seed_value, **options)


# ------------------------------------------------------------ who has a truth --
def test_truth_is_written_for_every_seeded_user_and_only_for_them(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT ootd.put_user(5, 'Oslo')")  # a real user: never simulated
    assert seed(db_url, 1_000, 5).created == 999
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE u.id IS NULL) FROM ootd_truth.users t "
            "LEFT JOIN ootd.users u ON u.id = t.user_id"
        ).fetchone() == (999, 0)
        assert conn.execute(
            "SELECT array_agg(id) FROM ootd.users u WHERE NOT EXISTS "
            "(SELECT 1 FROM ootd_truth.users t WHERE t.user_id = u.id)"
        ).fetchone()[0] == [5]
        conn.execute("SELECT ootd.put_user(5000, 'Chicago')")  # created after the seed: no truth either
        assert conn.execute("SELECT count(*) FROM ootd_truth.users WHERE user_id = 5000").fetchone()[0] == 0
        assert seed(db_url, 1_000, 5).created == 0  # a re-run writes no second truth
        assert conn.execute("SELECT count(*) FROM ootd_truth.users").fetchone()[0] == 999
        conn.execute("DELETE FROM ootd.users WHERE id <= 10")  # the truth goes with its user
        assert conn.execute("SELECT count(*) FROM ootd_truth.users").fetchone()[0] == 990
        assert conn.execute("SELECT ootd_truth.utility(5000, 1)").fetchone()[0] is None


def test_truth_is_deterministic_per_seed_and_chunk_by_chunk(db_url, pg_server, template_url):
    other = create_database(pg_server, TEMPLATE)
    try:
        seed(db_url, 3_000, 7)
        seed(pg_server.dsn(other), 1_200, 7, batch_size=500)  # another batching, then grown
        seed(pg_server.dsn(other), 3_000, 7, batch_size=700)
        with psycopg.connect(db_url) as a, psycopg.connect(pg_server.dsn(other)) as b:
            fa, fb = a.execute(TRUTH_FINGERPRINT).fetchone(), b.execute(TRUTH_FINGERPRINT).fetchone()
            assert fa == fb and fa[1] == 3_000
            b.execute("DELETE FROM ootd.users")
            b.commit()
        seed(pg_server.dsn(other), 3_000, 8)
        with psycopg.connect(pg_server.dsn(other)) as b:
            assert b.execute(TRUTH_FINGERPRINT).fetchone()[0] != fa[0]
    finally:
        drop_database(pg_server, other)


# ------------------------------------------------- the stated view of the truth --
@pytest.fixture(scope="module")
def population(pg_server, template_url):
    """10,000 users with seed 42 in their own database (shared read-only by this module)."""
    name = create_database(pg_server, TEMPLATE)
    seed(pg_server.dsn(name), 10_000, 42)
    with psycopg.connect(pg_server.dsn(name)) as conn:
        yield conn
    drop_database(pg_server, name)


VIEW = """
SELECT count(*) AS users,
       count(*) FILTER (WHERE NOT (u.style_dna -> 'preferred_colors') <@ to_jsonb(t.liked_colors)) AS colors_not_liked,
       count(*) FILTER (WHERE u.style_dna -> 'preferred_colors'
                              <> to_jsonb(t.liked_colors[:jsonb_array_length(u.style_dna -> 'preferred_colors')]))
           AS colors_not_the_strongest,
       min(jsonb_array_length(u.style_dna -> 'preferred_colors')) AS min_stated_colors,
       max(jsonb_array_length(u.style_dna -> 'preferred_colors')) AS max_stated_colors,
       min(cardinality(t.liked_colors)) AS min_true_colors, max(cardinality(t.liked_colors)) AS max_true_colors,
       count(*) FILTER (WHERE cardinality(t.liked_colors) > jsonb_array_length(u.style_dna -> 'preferred_colors'))
           AS colors_left_unstated,
       count(*) FILTER (WHERE u.style_dna ? 'archetype' AND u.style_dna ->> 'archetype' <> t.archetype)
           AS archetype_not_true,
       count(*) FILTER (WHERE NOT u.style_dna ? 'archetype') AS archetype_unstated,
       count(*) FILTER (WHERE NOT (u.style_rules -> 'liked_categories') <@ to_jsonb(t.liked_categories))
           AS categories_not_liked,
       count(*) FILTER (WHERE NOT coalesce(u.style_rules -> 'disliked_colors', '[]') <@ to_jsonb(t.disliked_colors))
           AS color_vetoes_not_disliked,
       count(*) FILTER (WHERE NOT coalesce(u.style_rules -> 'disliked_categories', '[]')
                                  <@ to_jsonb(t.disliked_categories)
                          AND jsonb_array_length(u.style_rules -> 'disliked_categories')
                              < (SELECT count(*) FROM ootd.categories)) AS vetoes_not_disliked,
       count(*) FILTER (WHERE NOT u.style_rules ? 'disliked_categories') AS stating_no_veto,
       avg(abs((u.style_dna ->> 'vibe')::float8 - t.vibe)) AS vibe_error,
       avg(abs((u.style_dna ->> 'dare')::float8 - t.dare)) AS dare_error,
       min(t.loyalty) AS min_loyalty, max(t.loyalty) AS max_loyalty, avg(t.loyalty) AS mean_loyalty
FROM ootd.users u JOIN ootd_truth.users t ON t.user_id = u.id
"""


def test_the_stated_profile_is_a_partial_view_of_the_truth(population):
    v = dict(zip([d.name for d in population.execute(VIEW).description], population.execute(VIEW).fetchone()))
    n = v["users"]
    assert n == 10_000
    # the stated preferred colors: 1 to 4 of the 3 to 5 truly liked, the strongest first
    assert (v["colors_not_liked"], v["colors_not_the_strongest"]) == (0, 0)
    assert (v["min_stated_colors"], v["max_stated_colors"], v["min_true_colors"], v["max_true_colors"]) == (1, 4, 3, 5)
    assert v["colors_left_unstated"] > 0.6 * n  # most users like more colors than they state
    # the true archetype, left out by about 2%
    assert v["archetype_not_true"] == 0 and 0.01 * n <= v["archetype_unstated"] <= 0.03 * n
    # stated likes and vetoes are true ones (the ~1% who veto every category state more than they mean)
    assert (v["categories_not_liked"], v["color_vetoes_not_disliked"], v["vetoes_not_disliked"]) == (0, 0, 0)
    assert v["stating_no_veto"] > 0.7 * n  # everyone has true dislikes; about a quarter state them
    # the traits with the form's noise (sd 0.06: a mean absolute error of about 0.048)
    assert 0.03 <= v["vibe_error"] <= 0.065 and 0.03 <= v["dare_error"] <= 0.065
    assert 0 <= v["min_loyalty"] and v["max_loyalty"] <= 1 and 0.45 <= v["mean_loyalty"] <= 0.55


def test_the_stated_taste_is_the_true_taste_with_noise(population):
    """cosine(stated, true): mean about 0.66, 90% of users between about 0.5 and 0.8 (docs/evaluation.md)."""
    p05, p50, p95, mean, unit = population.execute("""
        SELECT percentile_cont(0.05) WITHIN GROUP (ORDER BY c), percentile_cont(0.5) WITHIN GROUP (ORDER BY c),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY c), avg(c),
               bool_and(abs(public.vector_norm(taste) - 1) < 0.01)
        FROM (SELECT 1 - (u.taste <=> t.taste) AS c, t.taste FROM ootd.users u
              JOIN ootd_truth.users t ON t.user_id = u.id) s""").fetchone()
    assert unit
    assert 0.45 <= p05 <= 0.58 and 0.6 <= p50 <= 0.73 and 0.75 <= p95 <= 0.88 and 0.6 <= mean <= 0.72
    # closer to the user's own truth than to anyone else's of the same archetype
    own, others = population.execute("""
        SELECT avg(1 - (u.taste <=> t.taste)), avg(1 - (u.taste <=> o.taste))
        FROM ootd.users u JOIN ootd_truth.users t ON t.user_id = u.id
        JOIN ootd_truth.users o ON o.user_id = u.id % 10000 + 1 AND o.archetype = t.archetype
        WHERE u.id <= 10000""").fetchone()
    assert own > others + 0.2


# ------------------------------------------------------- nothing ranks with it --
#: Functions of schema ootd that may read the truth: the simulation's own entry points (the online
#: evaluation may add its own here).  Nothing the ranking, scoring, learning or the evaluation
#: oracle runs may be one of them or call one.
ALLOWED_TO_READ_TRUTH: frozenset[str] = frozenset()
#: The ranking/scoring/oracle family (issue 27), named to be sure none is ever allowed.
RANKING_FAMILY = (
    "feed", "feed_explain", "simulate", "_rank", "_ranked", "_score", "_outfit_score", "_context",
    "_serving_context", "_pool_rows", "evaluate", "evaluation_feeds", "like", "unlike", "_learn", "put_user",
    "user_profile",
)  # fmt: skip

FUNCTIONS_SQL = r"""
SELECT p.oid, p.oid::regprocedure::text AS signature, p.proname AS name,
       coalesce(CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) END, p.prosrc, '')
       || ' ' || coalesce(p.proconfig::text, '') AS body,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                 AND (   (d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = t.oid)
                      OR (d.refclassid = 'pg_catalog.pg_class'::regclass
                          AND d.refobjid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = t.oid))
                      OR (d.refclassid = 'pg_catalog.pg_type'::regclass
                          AND d.refobjid IN (SELECT y.oid FROM pg_catalog.pg_type y WHERE y.typnamespace = t.oid))
                      OR (d.refclassid = 'pg_catalog.pg_proc'::regclass
                          AND d.refobjid IN (SELECT f.oid FROM pg_catalog.pg_proc f WHERE f.pronamespace = t.oid))))
       AS depends_on_truth,
       ARRAY(SELECT d.refobjid FROM pg_catalog.pg_depend d
             WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
               AND d.refclassid = 'pg_catalog.pg_proc'::regclass) AS depends_on_functions
FROM pg_catalog.pg_proc p, pg_catalog.pg_namespace t
WHERE p.pronamespace = 'ootd'::regnamespace AND t.nspname = 'ootd_truth'
ORDER BY p.oid
"""
TRUTH_NAME = re.compile(r"ootd_truth", re.IGNORECASE)


@dataclass(frozen=True)
class Function:
    oid: int
    signature: str
    name: str
    body: str
    depends_on_truth: bool
    depends_on_functions: list[int]


def truth_readers_among_ranking(conn: psycopg.Connection, allowed: frozenset[str] = ALLOWED_TO_READ_TRUTH) -> list[str]:
    """Every function of schema ootd that is not `allowed`, with everything it calls (the closure over
    `ootd.<name>(` in its body, and pg_depend), must neither name ootd_truth (in its body or its
    settings: a search_path) nor depend on an object of it.  Returns the violations as
    "caller -> ... -> reader" paths ([] when there is none).  Dynamic SQL that assembles the schema's
    name from pieces is beyond this check (no function here builds a schema name)."""
    functions = [Function(*row) for row in conn.cursor(row_factory=tuple_row).execute(FUNCTIONS_SQL).fetchall()]
    by_name: dict[str, list[Function]] = {}
    for f in functions:
        by_name.setdefault(f.name, []).append(f)
    by_oid = {f.oid: f for f in functions}
    calls = {
        f.oid: {
            g.oid
            for name in set(re.findall(r"\bootd\.\"?([a-z_][a-z0-9_]*)\"?\s*\(", f.body, re.IGNORECASE))
            for g in by_name.get(name.lower(), [])
        }
        | {o for o in f.depends_on_functions if o in by_oid}
        for f in functions
    }
    reads = {f.oid for f in functions if f.depends_on_truth or TRUTH_NAME.search(f.body)}
    violations = []
    for root in functions:
        if root.name in allowed:
            continue
        path = {root.oid: [root.signature]}
        todo = [root.oid]
        while todo:
            oid = todo.pop()
            if oid in reads:
                violations.append(" -> ".join(path[oid]))
                continue
            for callee in sorted(calls[oid]):
                if callee not in path:
                    path[callee] = path[oid] + [by_oid[callee].signature]
                    todo.append(callee)
    return sorted(set(violations))


def test_no_ranking_scoring_learning_or_oracle_function_reads_the_truth(conn):
    names = {
        r["proname"] for r in conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'ootd'::regnamespace")
    }
    assert {"feed", "feed_explain", "simulate", "evaluate", "evaluation_feeds", "like", "_learn"} <= names
    assert not ALLOWED_TO_READ_TRUTH & set(RANKING_FAMILY)
    assert truth_readers_among_ranking(conn) == []
    views = conn.execute("""
        SELECT c.oid::regclass::text AS view FROM pg_class c
        WHERE c.relnamespace = 'ootd'::regnamespace AND c.relkind IN ('v', 'm')
          AND (pg_get_viewdef(c.oid) ~* 'ootd_truth'
               OR EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass
                          AND d.objid = r.oid JOIN pg_class x ON x.oid = d.refobjid
                          AND d.refclassid = 'pg_class'::regclass
                          WHERE r.ev_class = c.oid AND x.relnamespace = 'ootd_truth'::regnamespace))""").fetchall()
    assert views == []


def test_the_independence_check_fails_when_a_function_reads_the_truth(db_url):
    """The checker itself: a function reading the truth directly, through a search_path, through a
    BEGIN ATOMIC body, or by calling an allowed reader, is caught (all rolled back)."""
    with psycopg.connect(db_url) as conn:
        assert truth_readers_among_ranking(conn) == []
        conn.execute("SET ROLE ootd_owner")
        conn.execute("""CREATE FUNCTION ootd._probe_direct() RETURNS bigint LANGUAGE plpgsql AS $$
                        BEGIN RETURN (SELECT count(*) FROM ootd_truth.users); END $$""")
        conn.execute("""CREATE FUNCTION ootd._probe_path() RETURNS bigint LANGUAGE sql
                        SET search_path = pg_catalog, ootd_truth AS $$ SELECT 1::bigint $$""")
        conn.execute("""CREATE FUNCTION ootd._probe_atomic() RETURNS double precision LANGUAGE sql
                        BEGIN ATOMIC SELECT ootd_truth.like_probability(1.0); END""")
        conn.execute("""CREATE FUNCTION ootd.evaluate_online_probe() RETURNS bigint LANGUAGE sql
                        AS $$ SELECT count(*) FROM ootd_truth.users $$""")
        conn.execute("""CREATE FUNCTION ootd._probe_caller() RETURNS bigint LANGUAGE sql
                        AS $$ SELECT ootd.evaluate_online_probe() $$""")
        found = truth_readers_among_ranking(conn, frozenset({"evaluate_online_probe"}))
        assert found == [
            "ootd._probe_atomic()",
            "ootd._probe_caller() -> ootd.evaluate_online_probe()",
            "ootd._probe_direct()",
            "ootd._probe_path()",
        ]
        # a ranking function calling a reader is caught through the closure, whatever it is named
        conn.execute("""CREATE FUNCTION ootd._probe_rank() RETURNS bigint LANGUAGE sql
                        AS $$ SELECT ootd._probe_caller() $$""")
        assert "ootd._probe_rank() -> ootd._probe_caller() -> ootd.evaluate_online_probe()" in (
            truth_readers_among_ranking(conn, frozenset({"evaluate_online_probe"}))
        )
        conn.rollback()


@pytest.mark.parametrize("role", ["ootd_api", "ootd_analyst", "ootd_batch"])
def test_no_role_can_read_the_truth(db_url, role):
    seed(db_url, 20, 1)
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            """SELECT has_schema_privilege(%(r)s, 'ootd_truth', 'USAGE'),
                      coalesce(bool_or(has_table_privilege(%(r)s, c.oid,
                               'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')), false),
                      (SELECT coalesce(bool_or(has_function_privilege(%(r)s, p.oid, 'EXECUTE')), false)
                       FROM pg_proc p WHERE p.pronamespace = 'ootd_truth'::regnamespace)
               FROM pg_class c WHERE c.relnamespace = 'ootd_truth'::regnamespace""",
            {"r": role},
        ).fetchone() == (False, False, False)
        conn.execute(f"SET ROLE {role}")
        for statement in ("SELECT count(*) FROM ootd_truth.users", "SELECT ootd_truth.utility(1, 1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
            conn.execute(f"SET ROLE {role}")


# ------------------------------------------------------ the utility and the likes --
WEIGHTS = {"liked_color": 0.5, "disliked_color": -1.0, "liked_category": 0.5, "disliked_category": -1.0}


def test_utility_is_the_documented_mix(served_url):
    with psycopg.connect(served_url) as conn:
        rows = conn.execute(
            """SELECT t.user_id, o.id, t.taste::text, o.embedding::text, o.color, o.category, t.liked_colors,
                      t.disliked_colors, t.liked_categories, t.disliked_categories, t.loyalty, t.archetype,
                      p.archetype, ootd_truth.utility(t.user_id, o.id)
               FROM ootd_truth.users t CROSS JOIN ootd.outfits o
               JOIN ootd.pools p USING (pool_date, cluster_id)
               WHERE t.user_id %% 97 = 1 AND o.pool_date = %s""",
            (SERVED_DAY,),
        ).fetchall()
        assert len(rows) > 10_000
        kinds = {"archetype": 0, "liked": 0, "disliked": 0}
        for _, _, taste, emb, color, cat, lc, dc, lg, dg, loyalty, archetype, pool_archetype, got in rows:
            t, e = np.array(json.loads(taste)), np.array(json.loads(emb))  # pgvector's text: '[x,y,...]'
            want = float(t @ e / (np.linalg.norm(t) * np.linalg.norm(e)))
            want += WEIGHTS["liked_color"] * (color in lc) + WEIGHTS["disliked_color"] * (color in dc)
            want += WEIGHTS["liked_category"] * (cat in lg) + WEIGHTS["disliked_category"] * (cat in dg)
            want += loyalty * (pool_archetype == archetype)
            assert got == pytest.approx(want, abs=1e-5)
            kinds["archetype"] += pool_archetype == archetype
            kinds["liked"] += color in lc or cat in lg
            kinds["disliked"] += color in dc or cat in dg
        assert min(kinds.values()) > 100  # every term was exercised
        # the set-returning form gives the same utilities, and the logistic of each
        batch = conn.execute(
            "SELECT user_id, outfit_id, utility, like_probability FROM ootd_truth.utilities(%s, ARRAY[1, 98]::bigint[])",
            (SERVED_DAY,),
        ).fetchall()
        expected = {(r[0], r[1]): r[13] for r in rows if r[0] in (1, 98)}
        assert {(u, o): x for u, o, x, _ in batch} == pytest.approx(expected, abs=1e-12)
        assert all(p == pytest.approx(1 / (1 + math.exp(-2 * (x - 2.6)))) for _, _, x, p in batch)
        # a real user has no truth: no utility, no row
        conn.execute("SELECT ootd.put_user(99999, 'Oslo')")
        assert conn.execute("SELECT ootd_truth.utility(99999, (SELECT min(id) FROM ootd.outfits))").fetchone() == (
            None,
        )
        assert conn.execute(
            "SELECT count(*) FROM ootd_truth.utilities(%s, ARRAY[99999]::bigint[])", (SERVED_DAY,)
        ).fetchone() == (0,)


def test_like_probability_is_the_documented_logistic(conn):
    p = [conn.execute("SELECT ootd_truth.like_probability(%s) AS p", (u,)).fetchone()["p"] for u in (-3, 0, 2.6, 5)]
    assert p[2] == pytest.approx(0.5) and p == sorted(p) and p[0] < 1e-4 and p[3] > 0.99


def test_like_model_calibration(served_url):
    """About 24% likes on each user's best 3 outfits of the day (the 1:1 bound), fewer on what the
    feed serves, under 5% on a random outfit of the day (docs/evaluation.md, "Simulated users")."""
    with psycopg.connect(served_url) as conn:
        conn.execute(
            "CREATE TEMP TABLE u AS SELECT * FROM ootd_truth.utilities(%s, "
            "ARRAY(SELECT generate_series(1, 10000, 10)::bigint))",
            (SERVED_DAY,),
        )
        best3, any_outfit = conn.execute("""
            SELECT avg(like_probability) FILTER (WHERE r <= 3), avg(like_probability)
            FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY utility DESC) AS r FROM u) s""").fetchone()
        conn.execute(
            """CREATE TEMP TABLE served AS SELECT x.id AS user_id, f.outfit_id FROM ootd.users x
               CROSS JOIN LATERAL ootd.feed(x.id, (%s::date + time '09:00') AT TIME ZONE x.timezone, 3) f
               WHERE x.id %% 10 = 1""",
            (SERVED_DAY,),
        )
        conn.execute("ANALYZE u")
        conn.execute("ANALYZE served")
        served = conn.execute(
            "SELECT avg(u.like_probability), count(*) FROM served s JOIN u USING (user_id, outfit_id)"
        ).fetchone()
    assert served[1] > 2_500
    assert 0.15 <= best3 <= 0.32
    assert any_outfit < 0.05 < served[0] < best3
