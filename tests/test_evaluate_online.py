"""`ootd evaluate --online`: simulated users with a hidden truth, day by day in scratch databases (issue 27)."""

from __future__ import annotations

import json
import os
import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.conftest import run_cli

USERS, DAYS, SEED = 200, 3, 7


def databases(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_catalog.pg_database")}


def served_state(url: str) -> list:
    """Everything the served database holds that a run could change, but ootd.evaluations."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM ootd.users), (SELECT count(*) FROM ootd.likes),"
            " (SELECT count(*) FROM ootd.pools), (SELECT count(*) FROM ootd.outfits),"
            " (SELECT to_jsonb(w) FROM ootd.scoring_weights w),"
            " (SELECT count(*) FROM ootd_truth.users)"
        ).fetchall()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pg_server, template_url):
    from tests.conftest import create_database, drop_database

    name = create_database(pg_server, "ootd_template")
    url = pg_server.dsn(name)
    out = tmp_path_factory.mktemp("online")
    before_dbs, before = databases(url), served_state(url)
    env = {"DATABASE_URL": url}
    results = []
    for n in range(2):
        started = time.monotonic()
        plot = out / f"run{n}.png"
        result = run_cli(
            "evaluate",
            "--online",
            "--days",
            str(DAYS),
            "--users",
            str(USERS),
            "--seed",
            str(SEED),
            "--plot",
            str(plot),
            "--json",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        results.append((json.loads(result.stdout), plot, time.monotonic() - started))
    yield url, results, before_dbs, before
    drop_database(pg_server, name)


def test_the_stored_row_and_its_shape(runs):
    url, results, _, _ = runs
    row, _, seconds = results[0]
    print(f"run took {seconds:.1f} s")
    assert row["params"]["kind"] == "online"
    assert row["params"]["days"] == DAYS and row["params"]["users"] == USERS and row["params"]["seed"] == SEED
    assert row["params"]["arms"] == ["upper_bound", "pool_ceiling", "served", "own_pool", "floor"]
    assert row["params"]["experiment"] is None
    arms = row["metrics"]["arms"]
    for arm in row["params"]["arms"]:
        m = arms[arm]
        assert len(m["days"]) == DAYS
        assert m["impressions"] == sum(d["impressions"] for d in m["days"])
        for key in ("likes_per_impression", "illusion_ratio", "lift", "repeats"):
            assert key in m
        for d in m["days"]:
            assert d["users"] == USERS and d["impressions"] == 3 * USERS
            assert sum(d["categories"].values()) == d["impressions"] == sum(d["archetypes"].values())
    assert float(arms["upper_bound"]["illusion_ratio"]) == 1.0
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT params, metrics FROM ootd.evaluations WHERE id = %s", [row["id"]]).fetchone()
    assert stored == (row["params"], row["metrics"])


def test_the_arms_are_ordered_by_the_truth(runs):
    _, results, _, _ = runs
    arms = results[0][0]["metrics"]["arms"]
    lpi = {arm: float(m["likes_per_impression"]) for arm, m in arms.items()}
    print(lpi)
    assert lpi["upper_bound"] >= lpi["pool_ceiling"] >= lpi["served"] >= lpi["floor"]
    for n in range(DAYS):  # the bound is the best of every day; the ceiling the best of the user's own pool
        day = {a: float(arms[a]["days"][n]["mean_utility"]) for a in arms}
        assert all(u <= day["upper_bound"] for u in day.values()), day
        assert day["pool_ceiling"] >= max(day["own_pool"], day["floor"]), day


def test_a_seed_gives_the_same_metrics(runs):
    _, results, _, _ = runs
    assert results[0][0]["metrics"] == results[1][0]["metrics"]
    assert results[0][0]["id"] != results[1][0]["id"]


def test_scratch_databases_are_dropped_and_the_served_one_only_gains_the_rows(runs):
    url, results, before_dbs, before = runs
    assert databases(url) == before_dbs
    assert not [d for d in databases(url) if d.startswith("ootd_online_")]
    assert served_state(url) == before
    with psycopg.connect(url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM ootd.evaluations ORDER BY id")]
    assert ids == [row["id"] for row, _, _ in results]


def test_the_plot_is_a_png(runs):
    _, results, _, _ = runs
    for _, plot, _ in results:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(plot) > 1000


def online(url: str, *args: str) -> dict:
    result = run_cli(
        "evaluate", "--online", "--users", "60", "--seed", str(SEED), "--json", *args, env={"DATABASE_URL": url}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_running_experiment_is_an_arm_per_variant(pg_server, template_url, tmp_path):
    """`served` becomes one arm per variant of the running experiment, each serving every simulated user
    that variant's weights: the control's arm is the plain served arm of the same run without the
    experiment, metric for metric; the experiment is as it was after the run."""
    from tests.conftest import create_database, drop_database

    name = create_database(pg_server, "ootd_template")
    url = pg_server.dsn(name)
    try:
        plot = str(tmp_path / "p.png")
        plain = online(url, "--days", "2", "--arms", "served", "--plot", plot, "--jobs", "1")
        assert plain["params"]["arms"] == ["upper_bound", "served"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT ootd.start_experiment('blind', %s)",
                [
                    Jsonb(
                        {
                            "control": {"share": 0.5},
                            "blind": {"share": 0.5, "weights": {"cosine": 0, "preferred_color": 1}},
                        }
                    )
                ],
            )
            before = conn.execute("SELECT * FROM ootd.experiment_variants ORDER BY position").fetchall()
        row = online(url, "--days", "2", "--arms", "served", "--plot", plot)
        params, arms = row["params"], row["metrics"]["arms"]
        assert params["arms"] == ["upper_bound", "served:control", "served:blind"]
        assert params["experiment"] == "blind"
        assert params["arm_weights"]["served:blind"] == {"cosine": 0, "preferred_color": 1}
        assert arms["served:control"]["days"] == plain["metrics"]["arms"]["served"]["days"]
        assert arms["upper_bound"]["days"] == plain["metrics"]["arms"]["upper_bound"]["days"]
        assert arms["served:blind"]["days"] != arms["served:control"]["days"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT * FROM ootd.experiment_variants ORDER BY position").fetchall() == before
            assert conn.execute("SELECT count(*) FROM ootd.experiments WHERE ended_at IS NULL").fetchone() == (1,)
    finally:
        drop_database(pg_server, name)


def test_bad_arms_and_jobs_are_refused(runs):
    url = runs[0]
    for args, message in (
        (("--arms", "served,best"), "--arms: unknown best"),
        (("--jobs", "0"), "--jobs"),
        (("--jobs", "65"), "--jobs: 1..64"),
    ):
        result = run_cli("evaluate", "--online", "--days", "1", *args, env={"DATABASE_URL": url})
        assert result.returncode != 0 and message in result.stderr, result.stderr
