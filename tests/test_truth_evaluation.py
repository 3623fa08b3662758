"""NDCG against the hidden truth (issue 27): ootd_truth.evaluate_truth measures a stored plain
`ootd evaluate` run's feeds of simulated users against their true utility, next to the circular
oracle's NDCG (docs/evaluation.md, "Relevance: NDCG@k against a 1:1 oracle").

Expected figures are computed here in Python from ootd_truth.utility rows (the truth's one home) and
the served items of ootd.evaluation_feeds, never from the function under test.
"""

from __future__ import annotations

import json
import math
from datetime import date

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from rich.console import Console

from cli.evaluate import evaluate, print_evaluation
from tests.conftest import SERVED_DAY, run_cli
from tests.test_evaluate import DAY, TIMES, day  # noqa: F401  (the hand-made day fixture)

#: Hand-made truths for three of the hand-made day's four users (user 4 stays without one: skipped).
#: Embeddings of the day's outfit slot s: 1 at s % 32, + 0.5 at 7s % 32; the Red Skirt is slot 21.
SKIRT_AXIS = [0.0] * 32
SKIRT_AXIS[21], SKIRT_AXIS[(21 * 7) % 32] = 1.0, 0.5
TRUTHS = {  # user: (archetype, loyalty, taste, liked colors, disliked colors, liked categories, disliked categories)
    1: ("Minimal", 0.5, SKIRT_AXIS, ["Red"], ["Black"], ["Skirt"], ["Suit"]),
    2: ("Classic", 0.8, [1.0] + [0.0] * 31, ["White"], ["Red"], ["Top"], ["Shirt"]),
    3: ("Minimal", 0.2, [0.0] * 3 + [1.0] + [0.0] * 28, ["Black"], ["White"], ["Dress"], ["Top"]),
}


def like_probability(utility: float) -> float:
    return 1.0 / (1.0 + math.exp(-2.0 * (utility - 2.6)))


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def put_truths(conn: psycopg.Connection, truths: dict = TRUTHS) -> None:
    for user_id, (archetype, loyalty, taste, lc, dc, lg, dg) in truths.items():
        conn.execute(
            """INSERT INTO ootd_truth.users (user_id, archetype, loyalty, taste, liked_colors, disliked_colors,
                                             liked_categories, disliked_categories, vibe, trend, dare)
               VALUES (%s, %s, %s, %s::vector, %s, %s, %s, %s, 0.5, 0.5, 0.5)""",
            (user_id, archetype, loyalty, str(taste), lc, dc, lg, dg),
        )


def expected(conn: psycopg.Connection, pool_date, users: list[int], times: list[str], ks: list[int]) -> dict:
    """truth_ndcg@k and truth_pool_ceiling@k, overall and per local time, computed in Python: the gains
    from ootd_truth.utility(user, outfit) of every outfit of the date, the served items (and the served
    pool) from ootd.evaluation_feeds, the ideal = the user's best k of the date's outfits."""
    rows = conn.execute(
        """SELECT x.user_id, o.id AS outfit_id, o.cluster_id, ootd_truth.utility(x.user_id, o.id) AS utility
           FROM unnest(%s::bigint[]) AS x(user_id), ootd.outfits o WHERE o.pool_date = %s""",
        (users, pool_date),
    ).fetchall()
    gain = {(r["user_id"], r["outfit_id"]): like_probability(r["utility"]) for r in rows}
    cluster = {r["outfit_id"]: r["cluster_id"] for r in rows}
    by_scope: dict[str, dict[str, list[float]]] = {}
    ideals: dict[tuple[int, int], float] = {}
    for k in ks:
        feeds = conn.execute(
            "SELECT * FROM ootd.evaluation_feeds(%s, %s, %s::time[], %s)", (pool_date, users, times, k)
        ).fetchall()
        for f in feeds:
            u = f["user_id"]
            assert f["pool_date"] == pool_date  # every outfit scored above is of that date
            mine = sorted((g for (v, _), g in gain.items() if v == u), reverse=True)
            pool = sorted((g for (v, o), g in gain.items() if v == u and cluster[o] == f["cluster_id"]), reverse=True)
            ideal = ideals[u, k] = dcg(mine[:k])
            ndcg = dcg([gain[u, o] for o in f["items"]]) / ideal
            ceiling = dcg(pool[:k]) / ideal
            for scope in ("all", f["local_time"].strftime("%H:%M")):
                s = by_scope.setdefault(scope, {})
                s.setdefault(f"truth_ndcg@{k}", []).append(ndcg)
                s.setdefault(f"truth_pool_ceiling@{k}", []).append(ceiling)
    return {scope: {key: sum(v) / len(v) for key, v in m.items()} for scope, m in by_scope.items()} | {"ideal": ideals}


def truth_keys(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("truth_")}


def without_truth(metrics: dict) -> dict:
    out = {k: v for k, v in metrics.items() if not k.startswith("truth_") and k != "by_time"}
    out["by_time"] = {t: without_truth(m) for t, m in metrics.get("by_time", {}).items()}
    return out


@pytest.fixture
def truth_day(day: psycopg.Connection) -> psycopg.Connection:  # noqa: F811
    """The hand-made day of tests/test_evaluate.py, with truths for users 1-3, each user's own pool only."""
    put_truths(day)
    day.execute("UPDATE ootd.scoring_weights SET neighbour_pools = false")
    return day


def evaluations(conn: psycopg.Connection) -> list[dict]:
    return conn.execute("SELECT * FROM ootd.evaluations ORDER BY id").fetchall()


# ----------------------------------------------------------------- figures --
def test_the_utility_of_the_hand_made_truth(truth_day):
    """The truth of user 1 is written so that the Classic pool's Red Skirt is their best outfit:
    cos 1 + liked color 0.5 + liked category 0.5 + no loyalty (a Classic pool) = 2.0 exactly."""
    skirt = truth_day.execute("SELECT id FROM ootd.outfits WHERE category = 'Skirt'").fetchone()["id"]
    best = truth_day.execute(
        "SELECT outfit_id, utility FROM ootd_truth.utilities(%s, '{1}') ORDER BY utility DESC LIMIT 1", (DAY,)
    ).fetchone()
    assert best["outfit_id"] == skirt and best["utility"] == pytest.approx(2.0, abs=1e-6)


def test_truth_ndcg_and_pool_ceiling_equal_the_figures_computed_from_utility_rows(truth_day):
    row = truth_day.execute("SELECT * FROM ootd.evaluate(NULL, 10, %s::time[], 5)", (TIMES,)).fetchone()
    plain = row["metrics"]
    got = truth_day.execute("SELECT * FROM ootd_truth.evaluate_truth(%s)", (row["id"],)).fetchone()
    m = got["metrics"]
    assert got["id"] == row["id"] and got["params"] == row["params"]
    assert evaluations(truth_day) == [got]  # stored, in the same row
    assert m["truth_users"] == 3 and m["truth_skipped_users"] == 1  # user 4 has no truth
    assert m["truth_feeds@3"] == m["truth_feeds@5"] == 6  # 3 users x 2 local times
    assert without_truth(m) == without_truth(plain)  # the scorer's figures are untouched
    want = expected(truth_day, DAY, [1, 2, 3], TIMES, [3, 5])
    for key, value in want["all"].items():
        assert m[key] == pytest.approx(value, abs=1e-9), key
    for at in TIMES:
        for key, value in want[at].items():
            assert m["by_time"][at][key] == pytest.approx(value, abs=1e-9), (at, key)
        assert m["by_time"][at]["truth_feeds@3"] == 3
    # user 1's best outfit (the Red Skirt) is in another pool: below 1 even for a perfect re-rank
    assert m["truth_pool_ceiling@3"] < 1
    # the scorer agrees with itself far better than the truth agrees with the scorer
    assert m["truth_ndcg@3"] < m["ndcg@3"]
    # run again: the same figures, replaced rather than added
    again = truth_day.execute("SELECT metrics FROM ootd_truth.evaluate_truth(%s)", (row["id"],)).fetchone()
    assert again["metrics"] == m


def test_by_construction_both_lie_in_0_1_and_the_own_pool_ceiling_bounds_the_feed(truth_day):
    """With neighbour_pools off every served item is of the served pool, so the pool's best k by the
    truth bound the served k (gains are positive): 0 <= truth NDCG <= truth pool ceiling <= 1 per feed.
    The feeds are those ootd.evaluation_feeds serves, item for item."""
    for k in (3, 5):
        rows = truth_day.execute(
            "SELECT * FROM ootd_truth._feed_truth(%s, '{1,2,3,4}', %s::time[], ARRAY[%s])", (DAY, TIMES, k)
        ).fetchall()
        served = truth_day.execute(
            "SELECT * FROM ootd.evaluation_feeds(%s, '{1,2,3,4}', %s::time[], %s)", (DAY, TIMES, k)
        ).fetchall()
        key = lambda r: (r["user_id"], r["local_time"])  # noqa: E731
        assert {key(r): (r["items"], r["cluster_id"], r["pool_date"]) for r in rows} == {
            key(r): (r["items"], r["cluster_id"], r["pool_date"]) for r in served
        }
        for r in rows:
            if r["user_id"] == 4:  # no truth: no figure
                assert r["ndcg"] is None and r["pool_ceiling"] is None
            else:
                assert 0 <= r["ndcg"] <= r["pool_ceiling"] + 1e-12 <= 1 + 1e-12


def test_on_the_served_data_against_the_utilities_of_the_day(served_url):
    """10,000 seeded users (all simulated) and the offline pools: 40 users at two local times, the
    ideal from ootd_truth.utilities (the online evaluation's 1:1 bound)."""
    served_day = date.fromisoformat(SERVED_DAY)
    times = ["09:00", "21:00"]
    with psycopg.connect(served_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("UPDATE ootd.scoring_weights SET neighbour_pools = false")
        row = conn.execute("SELECT * FROM ootd.evaluate(%s, 40, %s::time[], 3)", (served_day, times)).fetchone()
        m = conn.execute("SELECT metrics FROM ootd_truth.evaluate_truth(%s)", (row["id"],)).fetchone()["metrics"]
        users = conn.execute("SELECT ootd._evaluation_sample(40) AS u").fetchone()["u"]
        best = conn.execute(
            """SELECT user_id, array_agg(like_probability ORDER BY like_probability DESC) AS g
               FROM ootd_truth.utilities(%s, %s) GROUP BY user_id""",
            (served_day, users),
        ).fetchall()
        want = expected(conn, served_day, users, times, [3])
    # the ideal is the online evaluation's 1:1 bound: each user's best 3 of ootd_truth.utilities
    assert {(r["user_id"], 3): dcg(r["g"][:3]) for r in best} == pytest.approx(want["ideal"], abs=1e-12)
    assert len(best) == 40
    assert m["truth_users"] == 40 and m["truth_skipped_users"] == 0 and m["truth_feeds@3"] == 80
    assert m["truth_ndcg@3"] == pytest.approx(want["all"]["truth_ndcg@3"], abs=1e-9)
    assert m["truth_pool_ceiling@3"] == pytest.approx(want["all"]["truth_pool_ceiling@3"], abs=1e-9)
    assert 0 < m["truth_ndcg@3"] <= m["truth_pool_ceiling@3"] < 1


# --------------------------------------------------------------------- CLI --
def test_the_cli_prints_both_figures_and_stores_them(truth_day, db_url):
    env = {"DATABASE_URL": db_url, "COLUMNS": "200"}
    out = run_cli("evaluate", "--users", "4", "--at-times", "09:00,15:00", env=env)
    assert out.returncode == 0, out.stderr
    for label in (
        "NDCG@3: agreement with the scorer (circular)",
        "NDCG@3 vs hidden truth",
        "pool ceiling@3 vs hidden truth",
        "NDCG@5 vs hidden truth",
        "simulated users measured",
    ):
        assert label in out.stdout, label
    assert "hidden truth of 3 simulated users (1 without one skipped)" in " ".join(out.stdout.split())
    (row,) = evaluations(truth_day)
    assert row["metrics"]["truth_users"] == 3 and "truth_ndcg@3" in row["metrics"]["by_time"]["15:00"]
    as_json = run_cli("evaluate", "--users", "4", "--at-times", "09:00,15:00", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["truth_ndcg@3"] == pytest.approx(row["metrics"]["truth_ndcg@3"])


def test_an_analyst_run_skips_the_truth_silently_and_is_stored(truth_day, db_url, capsys):
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute("SET ROLE ootd_analyst")
        row = evaluate(conn, users=4, times=None, limit=3)
        conn.commit()
    assert "truth_users" not in row["metrics"] and row["metrics"]["feeds@3"] == 12
    assert [r["id"] for r in evaluations(truth_day)] == [row["id"]]
    print_evaluation(row, Console(width=200))
    printed = " ".join(capsys.readouterr().out.split())
    assert "NDCG@3: agreement with the scorer (circular)" in printed and "vs hidden truth" not in printed
    assert "not measured against the hidden truth" in printed


def test_a_sample_without_simulated_users_stores_nothing_extra(day):  # noqa: F811
    row = day.execute("SELECT * FROM ootd.evaluate(NULL, 10, %s::time[], 5)", (TIMES,)).fetchone()
    notices = []
    day.add_notice_handler(lambda d: notices.append(d.message_primary))
    assert day.execute("SELECT * FROM ootd_truth.evaluate_truth(%s)", (row["id"],)).fetchone() == row
    assert evaluations(day) == [row]
    assert notices == [f"evaluation {row['id']}: no simulated user among its 4 sampled users; nothing stored"]


# ------------------------------------------------------------- bad input --
@pytest.mark.parametrize(
    "params, sqlstate, message",
    [
        (None, "P0002", "no evaluation 999"),
        (
            {"sweep": True},
            "22023",
            "is not a plain ootd.evaluate run (kind: sweep): the truth measures plain runs only",
        ),
        ({"by_variant": True, "experiment": "x"}, "22023", "(kind: by-variant)"),
        ({"kind": "online"}, "22023", "(kind: online)"),
    ],
)
def test_bad_input_is_a_precise_error_and_changes_nothing(truth_day, params, sqlstate, message):
    row = truth_day.execute("SELECT * FROM ootd.evaluate(NULL, 10, %s::time[], 5)", (TIMES,)).fetchone()
    target = 999
    if params is not None:
        target = truth_day.execute(
            "INSERT INTO ootd.evaluations (pool_date, params, metrics) VALUES (%s, %s, '{}') RETURNING id",
            (DAY, Jsonb(row["params"] | params)),
        ).fetchone()["id"]
    before = evaluations(truth_day)
    with pytest.raises(psycopg.Error) as exc:
        truth_day.execute("SELECT ootd_truth.evaluate_truth(%s)", (target,))
    assert exc.value.sqlstate == sqlstate
    assert message in str(exc.value)
    assert evaluations(truth_day) == before


def test_a_run_whose_feeds_changed_or_a_null_id_is_refused(truth_day):
    row = truth_day.execute("SELECT * FROM ootd.evaluate(NULL, 10, %s::time[], 5)", (TIMES,)).fetchone()
    with pytest.raises(psycopg.Error) as exc:
        truth_day.execute("SELECT ootd_truth.evaluate_truth(NULL)")
    assert exc.value.sqlstate == "22023" and "an evaluation id is required, got NULL" in str(exc.value)
    truth_day.execute("UPDATE ootd.scoring_weights SET cosine = cosine + 0.5")
    with pytest.raises(psycopg.Error) as exc:
        truth_day.execute("SELECT ootd_truth.evaluate_truth(%s)", (row["id"],))
    assert exc.value.sqlstate == "22023"
    assert f"evaluation {row['id']}'s feeds cannot be served again" in str(exc.value)
    assert evaluations(truth_day) == [row]


@pytest.mark.parametrize("role", ["ootd_analyst", "ootd_api", "ootd_batch"])
def test_only_the_owner_may_run_it(truth_day, role):
    row = truth_day.execute("SELECT * FROM ootd.evaluate(NULL, 10, %s::time[], 5)", (TIMES,)).fetchone()
    assert not truth_day.execute(
        "SELECT bool_or(has_function_privilege(%s, p.oid, 'EXECUTE')) AS x FROM pg_proc p "
        "WHERE p.pronamespace = 'ootd_truth'::regnamespace AND p.proname IN ('evaluate_truth', '_feed_truth', "
        "'_truth_metrics')",
        (role,),
    ).fetchone()["x"]
    truth_day.execute(f"SET ROLE {role}")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as exc:
            truth_day.execute("SELECT ootd_truth.evaluate_truth(%s)", (row["id"],))
        assert exc.value.sqlstate == "42501"
    finally:
        truth_day.execute("RESET ROLE")
    assert evaluations(truth_day) == [row]
