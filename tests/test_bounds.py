"""Issue 25 items 4, 11 and 14: numbers are refused where they are written (weights in the table, in an
experiment and in a what-if call; profile affinities), an analyst's evaluation is bounded in size and time,
and experiment results show counts, not rates, before a minimum exposure."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from api.simulator import MAX_WEIGHT, MIN_WEIGHT
from cli.evaluate import evaluate
from tests.conftest import run_cli
from tests.test_evaluate import DAY, day  # noqa: F401  (the hand-made day fixture)

OVERFLOWING = {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"preferred_color": 1e200, "liked_category": 1e200}}}  # fmt: skip


def experiments(conn) -> list:
    return [
        conn.execute(f"SELECT * FROM ootd.{table} ORDER BY 1, 2").fetchall()
        for table in ("experiments", "experiment_variants", "experiment_changes")
    ]


# ------------------------------------------------------------------ weights --
def test_the_simulators_weight_limits_are_the_databases(conn):
    limits = conn.execute("SELECT * FROM ootd._weight_limits()").fetchone()
    assert (limits["smallest"], limits["largest"]) == (MIN_WEIGHT, MAX_WEIGHT)
    catalog = {r["name"]: r["max_value"] for r in conn.execute("SELECT * FROM ootd.weight_catalog()")}
    assert catalog == {
        "preferred_color": 1e6,
        "liked_category": 1e6,
        "category_affinity": 1e6,
        "cosine": 1e6,
        "daypart_priority": 1e6,
        "liked_decay": 1,
        "jitter": 1e-6,
        "archetype": 1e6,
    }


@pytest.mark.parametrize(
    "column, value, problem",
    [
        ("preferred_color", 1e200, "preferred_color must be at most 1000000 (larger weights overflow the ranking), got 1e+200"),
        ("cosine", 1000001, "cosine must be at most 1000000 (larger weights overflow the ranking), got 1000001"),
        ("jitter", 5e-324, "jitter must be 0 or at least 1e-12 in size (smaller weights underflow the ranking), got 5e-324"),
        ("liked_category", 1e-13, "liked_category must be 0 or at least 1e-12 in size (smaller weights underflow the ranking), got 1e-13"),
        ("liked_decay", 1.5, "liked_decay must be between 0 and 1, got 1.5"),
        ("preferred_color", 0, "preferred_color must be > 0, got 0"),
    ],
)  # fmt: skip
def test_scoring_weights_out_of_range_are_refused_by_the_tables_check(conn, column, value, problem):
    before = conn.execute("SELECT * FROM ootd.scoring_weights").fetchone()
    assert (
        conn.execute(
            "SELECT ootd._weights_problem(jsonb_populate_record(w, %s)) AS p FROM ootd.scoring_weights w",
            (Jsonb({column: value}),),
        ).fetchone()["p"]
        == problem
    )
    with pytest.raises(errors.CheckViolation) as caught:
        conn.execute(f"UPDATE ootd.scoring_weights SET {column} = %s::double precision", (value,))
    assert caught.value.diag.constraint_name == "scoring_weights_in_range"
    assert conn.execute("SELECT * FROM ootd.scoring_weights").fetchone() == before


def test_an_experiment_whose_weights_would_overflow_is_refused_and_changes_nothing(conn):
    before = experiments(conn)
    with pytest.raises(errors.InvalidParameterValue) as caught:
        conn.execute("SELECT * FROM ootd.start_experiment('x5', %s)", (Jsonb(OVERFLOWING),))
    assert caught.value.diag.message_primary == (
        'variant "b": bad weights: preferred_color must be at most 1000000 (larger weights overflow the ranking), '
        "got 1e+200"
    )
    with pytest.raises(errors.InvalidParameterValue) as caught:
        conn.execute(
            "SELECT * FROM ootd.start_experiment('x6', %s)",
            (Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"jitter": 1e-300}}}),),
        )
    assert "jitter must be 0 or at least 1e-12 in size" in caught.value.diag.message_primary
    assert experiments(conn) == before
    edge = {"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"preferred_color": 1e6, "jitter": 1e-12}}}
    assert len(conn.execute("SELECT * FROM ootd.start_experiment('x7', %s)", (Jsonb(edge),)).fetchall()) == 2


def test_what_if_weights_out_of_range_are_refused(conn):
    w = conn.execute("SELECT * FROM ootd.scoring_weights").fetchone()
    with pytest.raises(errors.InvalidParameterValue) as caught:
        conn.execute(
            "SELECT ootd._weights_with(%s, w) FROM ootd.scoring_weights w", (Jsonb({"daypart_priority": 2e6}),)
        )
    assert caught.value.diag.message_primary == (
        "bad weights: daypart_priority must be at most 1000000 (larger weights overflow the ranking), got 2000000"
    )
    assert conn.execute("SELECT * FROM ootd.scoring_weights").fetchone() == w


# ------------------------------------------------------------------ profiles --
def test_a_profile_affinity_that_would_overflow_is_refused_by_the_cli_and_the_check(conn, db_url):
    env = {"DATABASE_URL": db_url}
    assert run_cli("user", "89", "--city", "Torrance", env=env).returncode == 0
    before = conn.execute("SELECT style_dna, updated_at FROM ootd.users WHERE id = 89").fetchone()
    bad = run_cli("user", "89", "--dna", '{"category_affinity":{"Dress":1e400}}', env=env)
    assert bad.returncode == 1
    assert (
        'user 89: style_dna.category_affinity must map category names to numbers between 0 and 1000000 ("Dress" '
        "is larger)" in bad.stderr
    )
    assert conn.execute("SELECT style_dna, updated_at FROM ootd.users WHERE id = 89").fetchone() == before
    with pytest.raises(errors.CheckViolation) as caught:
        conn.execute("SELECT ootd.put_user(89, p_style_dna => %s)", (Jsonb({"color_affinity": {"Red": 1000000.5}}),))
    assert caught.value.diag.message_primary == (
        'user 89: style_dna.color_affinity must map color names to numbers between 0 and 1000000 ("Red" is larger)'
    )
    conn.execute("SELECT ootd.put_user(89, p_style_dna => %s)", (Jsonb({"category_affinity": {"Dress": 1000000}}),))


# ----------------------------------------------------------------- evaluate --
def test_evaluate_runs_under_a_default_statement_timeout_that_a_flag_lifts(day):  # noqa: F811
    with day.transaction():
        evaluate(day, users=2, times=["09:00"])
        assert day.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "15min"
    with day.transaction():
        evaluate(day, users=2, times=["09:00"], statement_timeout=0)
        assert day.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "0"
    with pytest.raises(ValueError, match="a statement timeout is 0 \\(none\\) to 604800 seconds, got -1"):
        evaluate(day, users=2, statement_timeout=-1)


def test_the_cli_says_when_the_statement_timeout_cancelled_a_run(day, db_url):  # noqa: F811
    env = {"DATABASE_URL": db_url}
    stopped = run_cli("evaluate", "--users", "4", "--statement-timeout", "0.001", env=env)
    assert stopped.returncode == 1, stopped.stdout
    assert "the evaluation was cancelled by its statement timeout of 0.001 s and stored nothing" in stopped.stderr
    assert "--statement-timeout SECONDS (0 lifts it)" in stopped.stderr
    assert day.execute("SELECT count(*) AS n FROM ootd.evaluations").fetchone()["n"] == 0
    too_many = run_cli("evaluate", "--users", "100000", "--at-times", "00:00,00:01,00:02,00:03", env=env)
    assert too_many.returncode == 1
    assert "an evaluation reads at most 300000 feeds (users x local times), got 100000 x 4 = 400000" in too_many.stderr
    assert run_cli("evaluate", "--users", "4", "--statement-timeout", "0", env=env).returncode == 0


# --------------------------------------------------------------- experiments --
@pytest.fixture
def running(conn: psycopg.Connection) -> psycopg.Connection:
    """Twenty users (both variants get some) and an experiment started a moment ago."""
    for user_id in range(1, 21):
        conn.execute("SELECT ootd.put_user(%s, 'Torrance')", (user_id,))
    conn.execute(
        "SELECT * FROM ootd.start_experiment('fresh', %s)",
        (Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosine": 1}}}),),
    )
    return conn


RESULTS = "SELECT * FROM ootd.experiment_results WHERE experiment = 'fresh' ORDER BY control DESC"


def test_results_below_the_minimum_exposure_are_counts_with_no_rate(running):
    rows = running.execute(RESULTS).fetchall()
    assert [r["variant"] for r in rows] == ["control", "b"]
    assert sum(r["users"] for r in rows) == 20 and all(r["users"] > 0 for r in rows)
    for r in rows:
        assert r["meaningful"] is False and r["min_days"] == 1 and r["days"] < 1 / 24
        assert r["likes"] == 0 and r["users_liking"] == 0
        for rate in ("likes_per_user_day", "diff_likes_per_user_day", "diff_ci95_low", "diff_ci95_high",
                     "liking_share", "diff_liking_share", "liking_ci95_low", "liking_ci95_high"):  # fmt: skip
            assert r[rate] is None, rate
    running.execute("SET ootd.experiment_min_days = '0'")
    rows = running.execute(RESULTS).fetchall()
    assert all(r["meaningful"] and r["min_days"] == 0 and r["likes_per_user_day"] == 0 for r in rows)
    running.execute(
        "UPDATE ootd.experiments SET started_at = now() - interval '2 days', allocated_at = now() - interval '2 days'"
    )
    running.execute("RESET ootd.experiment_min_days")
    assert all(r["meaningful"] and r["likes_per_user_day"] == 0 for r in running.execute(RESULTS).fetchall())


@pytest.mark.parametrize("setting", ["abc", "-1", "3651", "1e3"])
def test_a_bad_minimum_exposure_setting_is_a_precise_error(running, setting):
    running.execute("SELECT set_config('ootd.experiment_min_days', %s, false)", (setting,))
    with pytest.raises(errors.InvalidParameterValue) as caught:
        running.execute(RESULTS)
    assert caught.value.diag.message_primary == (
        f'ootd.experiment_min_days must be a number of days from 0 to 3650, got "{setting}"'
    )


def test_the_cli_shows_counts_and_says_the_rate_is_not_yet_meaningful(running, db_url):
    env = {"DATABASE_URL": db_url, "COLUMNS": "200"}
    early = run_cli("experiment", "results", env=env)
    assert early.returncode == 0, early.stderr
    early.stdout = " ".join(early.stdout.split())
    assert "likes / user / day" not in early.stdout and "95% CI" not in early.stdout
    assert "users who liked" in early.stdout and re.search(r"\(\d+ seconds?\)", early.stdout)  # 1 second, 2 seconds
    assert "counts only: rates and differences are not yet meaningful after" in early.stdout
    assert "they are shown from 1.00 days" in early.stdout
    rated = run_cli("experiment", "results", "fresh", "--min-days", "0", env=env)
    assert rated.returncode == 0, rated.stderr
    assert "likes / user / day" in rated.stdout and "not yet meaningful" not in rated.stdout
    bad = run_cli("experiment", "results", "--min-days", "soon", env=env)
    assert bad.returncode == 1
    assert 'ootd.experiment_min_days must be a number of days from 0 to 3650, got "soon"' in bad.stderr
