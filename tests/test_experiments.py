"""Issue 20: A/B experiments on the scoring weights: assignment, the feed under a variant, the
results view, evaluation per variant, and refusals that change nothing."""

from __future__ import annotations

import math
import statistics
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.conftest import SERVED_DAY, create_database, drop_database, replica_pair

DAY = date.fromisoformat(SERVED_DAY)
AT = f"{DAY} 12:00+00"
START = "SELECT * FROM ootd.start_experiment(%s, %s)"
VARIANT_OF = "SELECT u.id, e.variant FROM ootd.users u CROSS JOIN LATERAL ootd.experiment_of(u.id) e ORDER BY u.id"
Z95 = 1.959963984540054
TREATMENT = {"cosine": 1.5, "daypart_priority": 0.5, "liked_category": 1.6, "neighbour_pools": False}


@pytest.fixture(scope="module")
def database(pg_server, served_template):
    """10,000 users with pools for DAY (offline stylist), shared by this module."""
    name = create_database(pg_server, served_template)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.fixture
def served(database):
    """A connection to the module's database; every experiment is gone afterwards (as the superuser:
    the functions never delete one)."""
    with psycopg.connect(database, autocommit=True) as conn:
        yield conn
        conn.execute("RESET ROLE")
        conn.execute("DELETE FROM ootd.experiment_changes; DELETE FROM ootd.experiment_variants")
        conn.execute("DELETE FROM ootd.experiments")


def start(conn, name, variants, control="control"):
    return conn.execute("SELECT * FROM ootd.start_experiment(%s, %s, %s)", (name, Jsonb(variants), control)).fetchall()


def assignment(conn) -> dict[int, str]:
    return dict(conn.execute(VARIANT_OF).fetchall())


def state(conn):
    """Everything an experiment function may change."""
    return [
        conn.execute(f"SELECT * FROM ootd.{table} ORDER BY 1, 2").fetchall()
        for table in ("experiments", "experiment_variants", "experiment_changes")
    ]


#: feed_explain's columns with the variant last (archetype_boost, issue 27, was added after it).
RANKED = (
    "rank, outfit_id, title, category, color, daypart, vetoed_by, priority, color_boost, category_boost, "
    "affinity_boost, liked_penalty, cosine, daypart_bonus, jitter, score, headline, cluster_id, pool_date, source, "
    "relaxed_rules, drawn_from, archetype_boost, variant"
)


def explain(conn, user_id, at=AT):
    return conn.execute(f"SELECT {RANKED} FROM ootd.feed_explain(%s, %s, 5)", (user_id, at)).fetchall()


# ---------------------------------------------------------------- assignment --
def test_assignment_is_stable_and_close_to_the_shares_on_10000_users(served, database):
    shares = {"control": 0.5, "bold": 0.3, "calm": 0.2}
    start(
        served,
        "stable",
        {
            "control": {"share": 0.5},
            "bold": {"share": 0.3, "weights": {"cosine": 1.5}},
            "calm": {"share": 0.2, "weights": {"jitter": 0}},
        },
    )
    first = assignment(served)
    assert len(first) == 10_000
    n = len(first)
    for variant, share in shares.items():
        got = sum(v == variant for v in first.values())
        sigma = math.sqrt(n * share * (1 - share))
        assert abs(got - n * share) <= 4 * sigma, (variant, got)  # within 4 binomial standard deviations
    # stable: another connection, and the feed itself, say the same; no per-user row exists
    with psycopg.connect(database) as other:
        assert assignment(other) == first
    for user_id in range(1, 10_001, 97):
        assert {r[-1] for r in served.execute("SELECT * FROM ootd.feed(%s, %s)", (user_id, AT))} == {first[user_id]}
    assert served.execute("SELECT count(*) FROM ootd.experiment_variants").fetchone()[0] == 3


def test_raising_the_one_treatments_share_only_moves_control_users_into_it(served):
    start(served, "ramp", {"control": {"share": 0.9}, "bold": {"share": 0.1, "weights": {"cosine": 1.5}}})
    before = assignment(served)
    served.execute("SELECT * FROM ootd.set_experiment_shares('ramp', %s)", (Jsonb({"control": 0.6, "bold": 0.4}),))
    after = assignment(served)
    assert all(after[u] == "bold" for u, v in before.items() if v == "bold")
    moved = sum(before[u] != after[u] for u in before)
    assert abs(moved - 3000) <= 4 * math.sqrt(10_000 * 0.3 * 0.7), moved


def test_two_experiments_assign_independently(served):
    start(served, "first", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": {"cosine": 1.5}}})
    first = assignment(served)
    served.execute("SELECT ootd.end_experiment('first')")
    start(served, "second", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": {"cosine": 1.5}}})
    second = assignment(served)
    same = sum(first[u] == second[u] for u in first)
    assert abs(same - 5000) <= 4 * math.sqrt(10_000 * 0.25), same  # unrelated buckets, not the same split


# ------------------------------------------------------------------- serving --
def test_no_experiment_means_no_variant_and_ending_one_returns_every_user_to_control(served):
    users = range(1, 10_001, 50)
    before = {u: explain(served, u) for u in users}
    assert all(row[-1] is None for rows in before.values() for row in rows)
    start(served, "ending", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": TREATMENT}})
    during = {u: explain(served, u) for u in users}
    variants = {u: rows[0][-1] for u, rows in during.items()}
    assert set(variants.values()) == {"control", "bold"}
    for u in users:  # the control is served exactly the weights in force
        if variants[u] == "control":
            assert [r[:-1] for r in during[u]] == [r[:-1] for r in before[u]]
    assert any([r[:-1] for r in during[u]] != [r[:-1] for r in before[u]] for u in users if variants[u] == "bold")
    served.execute("SELECT ootd.end_experiment('ending')")
    assert {u: explain(served, u) for u in users} == before


def test_a_feed_under_a_variant_equals_the_feed_with_those_weights_as_the_only_weights(served):
    start(served, "weights", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": TREATMENT}})
    bold = [u for u, v in assignment(served).items() if v == "bold"][:120]
    instants = (AT, f"{DAY} 19:00+00")
    under_variant = {(u, at): [r[:-1] for r in explain(served, u, at)] for u in bold for at in instants}
    assert {r[-1] for u in bold[:5] for r in explain(served, u)} == {"bold"}
    served.execute("SELECT ootd.end_experiment('weights')")
    served.execute(
        "UPDATE ootd.scoring_weights SET cosine = 1.5, daypart_priority = 0.5, liked_category = 1.6, "
        "neighbour_pools = false"
    )
    try:
        as_weights = {(u, at): [r[:-1] for r in explain(served, u, at)] for u in bold for at in instants}
    finally:
        served.execute(
            "UPDATE ootd.scoring_weights SET cosine = 0.5, daypart_priority = 1, liked_category = 1.2, "
            "neighbour_pools = true"
        )
    assert under_variant == as_weights
    assert all(len(rows) == 20 for rows in as_weights.values())  # own pool only: neighbour_pools is off


def test_simulating_a_users_profile_uses_and_reports_their_variant(served):
    start(served, "simulated", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": TREATMENT}})
    variants = assignment(served)
    for user_id in (1, 2, 3, 4, 5, 6, 7, 8):
        simulated = served.execute(
            f"SELECT {RANKED} FROM ootd.simulate(ootd.user_profile(%s), %s, '{{}}', NULL, 5)", (user_id, AT)
        ).fetchall()
        assert simulated == explain(served, user_id)
        assert {r[-1] for r in simulated} == {variants[user_id]}
    # a what-if profile without a user id is nobody's: the weights in force, no variant
    anonymous = served.execute(
        "SELECT variant FROM ootd.simulate(ootd.user_profile(1) - 'user_id', %s)", (AT,)
    ).fetchall()
    assert {r[0] for r in anonymous} == {None}


# ------------------------------------------------------------------- results --
def test_the_results_view_on_hand_made_likes_gives_the_known_numbers(served):
    start(served, "results", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": {"cosine": 1.5}}})
    variants = assignment(served)
    served.execute("SELECT ootd.end_experiment('results')")
    since = datetime(2026, 4, 1, tzinfo=timezone.utc)
    until = since + timedelta(days=10)
    served.execute(
        "UPDATE ootd.experiments SET started_at = %s, allocated_at = %s, ended_at = %s WHERE name = 'results'",
        (since, since, until),
    )
    assert (
        served.execute(
            "SELECT count(*) FROM ootd.likes WHERE liked_at >= %s AND liked_at < %s", (since, until)
        ).fetchone()[0]
        == 0
    )
    outfits = [r[0] for r in served.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 3")]
    control = sorted(u for u, v in variants.items() if v == "control")
    bold = sorted(u for u, v in variants.items() if v == "bold")
    likes = []  # control: 30 users like 2 outfits each; bold: 60 users like 1; 10 bold likes fall outside
    likes += [(u, o, since + timedelta(days=1)) for u in control[:30] for o in outfits[:2]]
    likes += [(u, outfits[0], since + timedelta(days=9, hours=23)) for u in bold[:60]]
    likes += [(u, outfits[0], since - timedelta(seconds=1)) for u in bold[60:65]]
    likes += [(u, outfits[0], until) for u in bold[65:70]]
    with served.cursor() as cur:
        cur.executemany("INSERT INTO ootd.likes (user_id, outfit_id, liked_at) VALUES (%s, %s, %s)", likes)
    try:
        rows = served.execute(
            "SELECT * FROM ootd.experiment_results WHERE experiment = 'results' ORDER BY control DESC"
        ).fetchall()
    finally:
        served.execute("DELETE FROM ootd.likes WHERE liked_at BETWEEN %s AND %s", (since - timedelta(1), until))
    columns = [
        "experiment", "variant", "control", "share", "running", "since", "until", "days", "users", "likes",
        "likes_per_user_day", "diff_likes_per_user_day", "diff_ci95_low", "diff_ci95_high", "users_liking",
        "liking_share", "diff_liking_share", "liking_ci95_low", "liking_ci95_high",
    ]  # fmt: skip
    c, b = (dict(zip(columns, row)) for row in rows)
    per_user_c = [2] * 30 + [0] * (len(control) - 30)
    per_user_b = [1] * 60 + [0] * (len(bold) - 60)
    assert (c["variant"], b["variant"], c["running"], c["days"]) == ("control", "bold", False, 10)
    assert (c["since"], c["until"]) == (since, until)
    assert (c["users"], b["users"], c["likes"], b["likes"]) == (len(control), len(bold), 60, 60)
    assert c["users"] + b["users"] == 10_000
    assert c["likes_per_user_day"] == pytest.approx(60 / len(control) / 10, rel=1e-12)
    assert b["likes_per_user_day"] == pytest.approx(60 / len(bold) / 10, rel=1e-12)
    diff = (statistics.mean(per_user_b) - statistics.mean(per_user_c)) / 10
    se = math.sqrt(statistics.variance(per_user_b) / len(bold) + statistics.variance(per_user_c) / len(control)) / 10
    assert b["diff_likes_per_user_day"] == pytest.approx(diff, rel=1e-9)
    assert (b["diff_ci95_low"], b["diff_ci95_high"]) == (
        pytest.approx(diff - Z95 * se, rel=1e-9),
        pytest.approx(diff + Z95 * se, rel=1e-9),
    )
    pc, pb = 30 / len(control), 60 / len(bold)
    se_rate = math.sqrt(pb * (1 - pb) / len(bold) + pc * (1 - pc) / len(control))
    assert (c["users_liking"], b["users_liking"]) == (30, 60)
    assert (c["liking_share"], b["liking_share"]) == (pytest.approx(pc), pytest.approx(pb))
    assert b["diff_liking_share"] == pytest.approx(pb - pc, rel=1e-9)
    assert (b["liking_ci95_low"], b["liking_ci95_high"]) == (
        pytest.approx(pb - pc - Z95 * se_rate, rel=1e-9),
        pytest.approx(pb - pc + Z95 * se_rate, rel=1e-9),
    )
    assert b["liking_ci95_low"] > 0  # 60 of ~5,000 against 30 of ~5,000: bold's share is higher
    assert c["diff_likes_per_user_day"] is None and c["diff_ci95_low"] is None  # the control is the baseline


def test_a_change_of_shares_starts_a_new_allocation_period_and_is_logged(served):
    start(served, "logged", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": {"cosine": 1.5}}})
    served.execute("SELECT * FROM ootd.set_experiment_shares('logged', '{\"bold\": 0.25, \"control\": 0.75}')")
    served.execute("SELECT ootd.end_experiment('logged')")
    log = served.execute(
        "SELECT change, changed_by = session_user, shares FROM ootd.experiment_changes "
        "WHERE experiment = 'logged' ORDER BY id"
    ).fetchall()
    assert log == [
        ("start", True, {"control": 0.5, "bold": 0.5}),
        ("shares", True, {"control": 0.75, "bold": 0.25}),
        ("end", True, {"control": 0.75, "bold": 0.25}),
    ]
    served.execute("SET ootd.experiment_min_days = 0")  # rates from the first second (default: 1 day)
    results = served.execute(
        "SELECT variant, share, running, likes, diff_likes_per_user_day, diff_ci95_low, liking_ci95_high "
        "FROM ootd.experiment_results WHERE experiment = 'logged'"
    ).fetchall()
    # no like in the period: no difference, and no interval (not a width-0 one)
    assert [(v, float(s), r, n, d, lo, hi) for v, s, r, n, d, lo, hi in results] == [
        ("control", 0.75, False, 0, None, None, None),
        ("bold", 0.25, False, 0, 0.0, None, None),
    ]


# ---------------------------------------------------------------- evaluation --
def test_evaluate_variants_measures_each_variant_on_the_same_users_and_changes_nothing(served):
    start(
        served,
        "offline",
        {"control": {"share": 0.5}, "twin": {"share": 0.25}, "bold": {"share": 0.25, "weights": TREATMENT}},
    )
    before = state(served)
    row = served.execute(
        "SELECT params, metrics FROM ootd.evaluate_variants(NULL, NULL, 60, '{09:00,21:00}', 5)"
    ).fetchone()
    assert state(served) == before
    params, metrics = row
    assert (params["experiment"], params["by_variant"], params["sampled"]) == ("offline", True, 60)
    assert (metrics["variants"], metrics["control"]) == (["control", "bold", "twin"], "control")
    strip = ("share", "weights")
    by_variant = metrics["by_variant"]
    same = {k: v for k, v in by_variant["control"].items() if k not in strip}
    assert {k: v for k, v in by_variant["twin"].items() if k not in strip} == same  # an A/A pair measures alike
    assert by_variant["bold"]["ndcg@3"] != same["ndcg@3"]
    assert by_variant["bold"]["feeds@3"] == same["feeds@3"] == 120  # the same users at the same instants
    assert by_variant["bold"]["weights"] == {
        "cosine": 1.5,
        "daypart_priority": 0.5,
        "liked_category": 1.6,
        "neighbour_pools": False,
    }


def test_evaluate_variants_without_an_experiment_is_p0002(served):
    with pytest.raises(errors.NoDataFound, match="no experiment is running"):
        served.execute("SELECT ootd.evaluate_variants()")
    with pytest.raises(errors.NoDataFound, match="unknown experiment 'nope'"):
        served.execute("SELECT ootd.evaluate_variants('nope')")


# ------------------------------------------------------------------- refusals --
BAD_STARTS = [
    ("Bad Name", {"control": {"share": 0.5}, "b": {"share": 0.5}}, "22023", "an experiment name is"),
    ("x", [1, 2], "22023", "variants must be a JSON object"),
    ("x", {"control": {"share": 1}}, "22023", "at least one other variant"),
    ("x", {"control": {"share": 0.5}, "B": {"share": 0.5}}, "22023", "a variant name is"),
    ("x", {"control": {"share": 0.5}, "b": {"share": -0.5}, "c": {"share": 1}}, "22023", 'variant "b" must be a number'),
    ("x", {"control": {"share": 0.5}, "b": {"share": "0.5"}}, "22023", 'variant "b" must be a number'),
    ("x", {"control": {"share": 0.5}, "b": {"share": 0.4}}, "22023", "must add up to 1, got 0.9"),
    ("x", {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosin": 1}}}, "22023", 'unknown weight "cosin"'),
    ("x", {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"liked_decay": 2}}}, "22023",
     "liked_decay must be between 0 and 1, got 2"),
    ("x", {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosine": "high"}}}, "22023", "bad weight value"),
    ("x", {"control": {"share": 0.5}, "b": {"share": 0.5, "wieghts": {}}}, "22023", 'variant "b" must be'),
    ("x", {"control": {"share": 0.5, "weights": {"cosine": 1}}, "b": {"share": 0.5}}, "22023", "takes no weights"),
    ("x", {"a": {"share": 0.5}, "b": {"share": 0.5}}, "22023", 'the control "control" is not one of the variants'),
    ("x", {"control": {"share": 0}, "b": {"share": 1}}, "22023", "needs a share above 0"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "variants", "sqlstate", "message"), BAD_STARTS)
def test_a_bad_experiment_is_refused_with_a_precise_error_and_changes_nothing(
    served, name, variants, sqlstate, message
):
    before = state(served)
    with pytest.raises(psycopg.Error) as caught:
        start(served, name, variants)
    assert caught.value.sqlstate == sqlstate
    assert message in caught.value.diag.message_primary
    assert state(served) == before


def test_two_experiments_at_once_a_reused_name_and_changes_to_unknown_or_ended_ones_are_refused(served):
    start(served, "running", {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosine": 1}}})
    before = state(served)
    refusals = [
        (START, ("other", Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5}})), "55006", "is running"),
        ("SELECT * FROM ootd.set_experiment_shares('running', %s)", (Jsonb({"zz": 0.5}),), "22023", 'no variant "zz"'),
        ("SELECT * FROM ootd.set_experiment_shares('running', %s)", (Jsonb({"b": 0.6}),), "22023", "got 1.1"),
        ("SELECT * FROM ootd.set_experiment_shares('running', %s)", (Jsonb({"b": 1, "control": 0}),), "22023",
         "needs a share above 0"),
        ("SELECT * FROM ootd.set_experiment_shares('running', %s)", (Jsonb([0.5]),), "22023", "must be a JSON object"),
        ("SELECT * FROM ootd.set_experiment_shares('nope', %s)", (Jsonb({"b": 0.5}),), "P0002", "unknown experiment"),
        ("SELECT ootd.end_experiment(%s)", ("nope",), "P0002", "unknown experiment 'nope'"),
        ("SELECT ootd.end_experiment(%s)", (None,), "P0002", "unknown experiment NULL"),
    ]  # fmt: skip
    for query, args, sqlstate, message in refusals:
        with pytest.raises(psycopg.Error) as caught:
            served.execute(query, args)
        assert (caught.value.sqlstate, message in caught.value.diag.message_primary) == (sqlstate, True), query
        assert state(served) == before
    served.execute("SELECT ootd.end_experiment('running')")
    ended = state(served)
    for query, args, sqlstate in [
        ("SELECT ootd.end_experiment(%s)", ("running",), "55000"),
        ("SELECT * FROM ootd.set_experiment_shares('running', %s)", (Jsonb({"b": 0.5}),), "55000"),
        (START, ("running", Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5}})), "42710"),
    ]:
        with pytest.raises(psycopg.Error) as caught:
            served.execute(query, args)
        assert caught.value.sqlstate == sqlstate, query
        assert state(served) == ended


@pytest.mark.parametrize("role", ["ootd_api", "ootd_batch"])
def test_only_analysts_and_the_owner_change_experiments(served, role):
    variants = Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosine": 1}}})
    served.execute(f"SET ROLE {role}")
    with pytest.raises(errors.InsufficientPrivilege):
        served.execute(START, ("nope", variants))
    served.execute("SET ROLE ootd_analyst")
    with pytest.raises(errors.InsufficientPrivilege):
        served.execute("INSERT INTO ootd.experiments (name) VALUES ('direct')")
    start(served, "analysts", variants.obj)
    assert served.execute("SELECT count(*) FROM ootd.experiment_results").fetchone()[0] == 2
    served.execute("SELECT ootd.end_experiment('analysts')")
    served.execute("RESET ROLE")
    assert served.execute("SELECT count(*) FROM ootd.experiment_changes").fetchone()[0] == 2


# ------------------------------------------------------------------ replicas --
def test_a_hot_standby_serves_the_same_variants(tmp_path_factory):
    with replica_pair(tmp_path_factory.mktemp("experiment-standby"), 400, 7, DAY) as pair:
        with psycopg.connect(pair.primary.dsn(), autocommit=True) as primary:
            start(primary, "standby", {"control": {"share": 0.5}, "bold": {"share": 0.5, "weights": TREATMENT}})
            pair.replica.wait_for_replay(timeout=60)
            with psycopg.connect(pair.replica.dsn(), autocommit=True) as standby:
                assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                for user_id in range(1, 401, 7):
                    on_primary = explain(primary, user_id)
                    assert explain(standby, user_id) == [r[:19] + ("durable",) + r[20:] for r in on_primary]
                assert {r[1] for r in standby.execute(VARIANT_OF)} == {"control", "bold"}
