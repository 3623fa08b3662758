"""The A/B machinery proven on known ground truth (issue 27, item 3).

Simulated users (ootd seed's, with a hidden truth) live a few days through the online evaluation's
day step (ootd_truth.online_day, arm `served`: ootd.feed, which serves each user their variant of
the running experiment; likes drawn from the truth, written with ootd.like).  Then:

- an A/B experiment whose treatment the truth says is better is detected by
  ootd.experiment_results (the 95% CI of the difference in likes per user per day excludes 0):
  the control ranks without the profile (weights in force: cosine 0, color, category and affinity
  multipliers neutral: the daypart and the tie-break only), the treatment with it and with more
  taste (cosine 1.5, the stated colors and categories): the truth is taste- and color-driven, and
  the test checks with the truth that the treatment serves what users like more;
- A/A experiments (both variants the weights in force) are not: 20 of them, each splitting the
  same simulated likes by its own bucketing (an experiment's buckets hash its name), cover 0 in
  at least 19.

The simulation runs in seconds, not days: ootd.experiment_min_days is set to 0 (rates over a
fraction of a day: the difference and its CI scale alike, so whether the CI covers 0 does not
depend on the period's length).  docs/experiments.md, "Proven on simulated users".
"""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

USERS, DAYS, SEED = 600, 4, 11
START = date(2026, 12, 8)
#: The control: the weights in force ignore the profile (daypart priority and the tie-break rank).
BLIND = {"cosine": 0.0, "preferred_color": 1.0, "liked_category": 1.0, "category_affinity": 0.0}
#: The treatment: the profile, with more weight on the taste than the defaults.
TREATMENT = {"cosine": 1.5, "preferred_color": 1.25, "liked_category": 1.2, "category_affinity": 0.05}
AA = {"control": {"share": 0.5}, "same": {"share": 0.5, "weights": {}}}


def simulate(url: str, experiment: str, variants: dict, weights: dict | None = None) -> psycopg.Connection:
    """Seed, start the experiment, then DAYS simulated days; returns the (open) session."""
    from batch.nightly import NightlyConfig, run_nightly
    from batch.seed import seed_users
    from db.connect import connect

    with connect(url) as conn:
        seed_users(conn, USERS, SEED)
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    if weights:
        conn.execute("SELECT ootd_truth.online_set_weights(%s)", [Jsonb(weights)])
    conn.execute("SELECT ootd.start_experiment(%s, %s)", [experiment, Jsonb(variants)])
    for n in range(DAYS):
        day = START + timedelta(days=n)
        run_nightly(url, NightlyConfig(day=day, llm="offline", force=True))
        conn.execute("SELECT ootd_truth.online_day('served', %s, %s)", [day, SEED])
    conn.execute("SET ootd.experiment_min_days = 0")
    return conn


def results(conn: psycopg.Connection, experiment: str) -> dict:
    rows = conn.execute("SELECT * FROM ootd.experiment_results WHERE experiment = %s", [experiment]).fetchall()
    return {r["variant"]: r for r in rows}


def test_a_treatment_the_truth_prefers_is_detected(db_url):
    conn = simulate(
        db_url,
        "cosine_known_better",
        {"control": {"share": 0.5}, "taste": {"share": 0.5, "weights": TREATMENT}},
        weights=BLIND,
    )
    with conn:
        # The truth says the treatment is better: the mean like probability of what each variant served.
        truth = {
            r["variant"]: r["p"]
            for r in conn.execute(
                "SELECT e.variant, avg(ootd_truth.like_probability(i.utility)) AS p"
                " FROM pg_temp.online_impressions i CROSS JOIN LATERAL ootd.experiment_of(i.user_id) e GROUP BY 1"
            )
        }
        assert truth["taste"] > truth["control"] * 1.2, truth
        r = results(conn, "cosine_known_better")
        t, c = r["taste"], r["control"]
        per_day = (t["likes"] / t["users"] - c["likes"] / c["users"]) / DAYS  # per simulated day
        half = per_day * (t["diff_ci95_high"] - t["diff_ci95_low"]) / (t["diff_ci95_high"] + t["diff_ci95_low"])
        print(
            f"A/B: {c['users']} / {t['users']} users, {c['likes']} / {t['likes']} likes, truth {truth}, "
            f"diff {per_day:+.3f} [{per_day - half:+.3f}, {per_day + half:+.3f}] likes per user per simulated day"
        )
        assert r["taste"]["meaningful"]
        assert r["taste"]["diff_ci95_low"] > 0, r["taste"]


def test_aa_experiments_cover_zero(db_url):
    conn = simulate(db_url, "aa_00", AA)
    with conn:
        since = conn.execute("SELECT allocated_at FROM ootd.experiments WHERE name = 'aa_00'").fetchone()
        conn.execute("SELECT ootd.end_experiment('aa_00')")
        covered = []
        for n in range(20):
            name = f"aa_{n:02d}"
            if n:
                conn.execute(
                    "SELECT ootd.start_experiment(%s, %s)",
                    [name, Jsonb(AA)],
                )
                conn.execute("SELECT ootd.end_experiment(%s)", [name])
                # the same simulated likes, split by this experiment's buckets
                conn.execute(
                    "UPDATE ootd.experiments SET started_at = %s, allocated_at = %s WHERE name = %s",
                    [since["allocated_at"], since["allocated_at"], name],
                )
            r = results(conn, name)["same"]
            assert r["meaningful"] and r["diff_ci95_low"] is not None
            covered.append(r["diff_ci95_low"] <= 0 <= r["diff_ci95_high"])
        print(f"A/A: {sum(covered)} of 20 CIs cover 0")
        assert sum(covered) >= 19
