"""`ootd evaluate --online`: simulated users with a hidden truth, day by day in scratch databases (issue 27)."""

from __future__ import annotations

import json
import os
import time

import psycopg
import pytest

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
    assert row["params"]["arms"] == ["upper_bound", "served", "own_pool", "floor"]
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
    assert lpi["upper_bound"] >= lpi["served"] >= lpi["floor"]
    for n in range(DAYS):  # the bound is the best of every day
        best = float(arms["upper_bound"]["days"][n]["mean_utility"])
        assert all(float(arms[a]["days"][n]["mean_utility"]) <= best for a in arms)


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
