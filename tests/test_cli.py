"""`ootd` as a person runs it: refusals, missing schemas and the nightly summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from db import REPO_ROOT
from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI

DAY = date(2026, 4, 20)


# ------------------------------------------------------------------- pytest --
def test_the_venv_pytest_script_collects_tests_from_the_repo_root():
    """`.venv/bin/pytest tests/...` works, not only `python -m pytest` (which puts the cwd on sys.path)."""
    script = Path(sys.executable).parent / "pytest"
    if not script.exists():
        pytest.skip(f"no pytest script next to {sys.executable}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OOTD_REQUIRE_MARKERS")}
    result = subprocess.run(
        [str(script), "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_seed.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/test_seed.py::test_cli_seed_reports_and_rejects_bad_counts" in result.stdout


# -------------------------------------------------------------------- token --
def test_token_refuses_a_user_who_does_not_exist(seeded_url, tmp_path):
    env = {"DATABASE_URL": seeded_url, "OOTD_HOME": str(tmp_path)}
    unknown = run_cli("token", "999999", env=env)
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert unknown.stderr.strip() == "ootd: error: unknown user 999999"
    assert not (tmp_path / "api_secret").exists()  # refused before the per-install secret is made

    known = run_cli("token", "7", env=env)
    assert known.returncode == 0, known.stderr
    from api.auth import Authenticator, load_secret

    os.environ["OOTD_HOME"], saved = str(tmp_path), os.environ.get("OOTD_HOME")
    try:
        secret = load_secret(create=False)
    finally:
        if saved is None:
            del os.environ["OOTD_HOME"]
        else:
            os.environ["OOTD_HOME"] = saved
    assert Authenticator(secret).user_id(f"Bearer {known.stdout.strip()}") == 7


# ----------------------------------------------------------- missing schema --
@pytest.mark.parametrize(
    "args",
    [("summary",), ("seed", "--users", "10"), ("token", "1"), ("nightly", "--date", "2026-04-20", "--llm", "offline")],
)
def test_a_database_without_the_schema_says_run_ootd_migrate(empty_db_url, tmp_path, args):
    result = run_cli(*args, env={"DATABASE_URL": empty_db_url, "OOTD_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(
        f"ootd: error: the database has no ootd schema ({empty_db_url}): run 'ootd migrate' first (SQLSTATE "
    ), result.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('ootd')").fetchone()[0] is None


def test_the_missing_schema_message_hides_the_password(empty_db_url, pg_server, tmp_path):
    password = pg_server.secret()  # the real one: the server takes no other
    with_password = empty_db_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")
    assert with_password != empty_db_url
    result = run_cli("summary", env={"DATABASE_URL": with_password, "OOTD_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert password not in result.stderr
    assert f"the database has no ootd schema ({empty_db_url}): run 'ootd migrate' first" in result.stderr


def test_a_schema_missing_its_tables_says_it_is_not_up_to_date(empty_db_url, tmp_path):
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ootd")
    result = run_cli("summary", env={"DATABASE_URL": empty_db_url, "OOTD_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ootd: error: the ootd schema in the database ({empty_db_url}) is not up to date "
        f"(relation \"ootd.users\" does not exist): run 'ootd migrate' (SQLSTATE 42P01)"
    )


def test_a_missing_object_of_either_schema_means_not_migrated():
    """A missing object of ootd or of ootd_truth (a database behind the code: `ootd evaluate` calls
    ootd_truth.evaluate_truth since 0019) is a schema to migrate; one of another schema is not."""
    from db.connect import DatabaseError

    for sqlstate, message, missing in (
        ("42883", "function ootd_truth.evaluate_truth(bigint) does not exist", True),
        ("3F000", 'schema "ootd_truth" does not exist', True),
        ("42P01", 'relation "ootd.users" does not exist', True),
        ("42883", "function public.evaluate_truth(bigint) does not exist", False),
        ("42883", "function ootd_truthy.f() does not exist", False),
        ("22023", "function ootd_truth.evaluate_truth(bigint) does not exist", False),
    ):
        assert DatabaseError(sqlstate=sqlstate, message=message).names_missing_ootd_object() is missing, message


# ------------------------------------------------------------------ nightly --
def _row(out: str, label: str) -> str:
    match = re.search(rf"^[│| ]*{re.escape(label)}\s*[│|]?\s+(.+?)\s*[│|]?\s*$", out, re.MULTILINE)
    assert match, f"no {label!r} row in:\n{out}"
    return match.group(1)


def _ledger(url: str, day: date) -> tuple[int, int, int]:
    """(failed clusters, requests whose status is not 'ok', all requests) of `day`, from the database."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            SELECT (SELECT count(DISTINCT c.cluster_id) FROM ootd.llm_calls c WHERE c.pool_date = %(day)s
                      AND NOT EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = c.pool_date
                                                                   AND p.cluster_id = c.cluster_id)),
                   (SELECT count(*) FROM ootd.llm_calls WHERE pool_date = %(day)s AND status <> 'ok'),
                   (SELECT count(*) FROM ootd.llm_calls WHERE pool_date = %(day)s)""",
            {"day": day},
        ).fetchone()


def _failed_requests(url: str, day: date) -> list[tuple[str, bool, bool]]:
    """Each request of `day` whose status is not 'ok': (status, drawn for a Glam cluster, its cluster has a pool)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            """
            SELECT c.status, c.cluster_id LIKE '%%\\_Glam\\_%%',
                   EXISTS (SELECT 1 FROM ootd.pools p WHERE p.pool_date = c.pool_date AND p.cluster_id = c.cluster_id)
            FROM ootd.llm_calls c WHERE c.pool_date = %s AND c.status <> 'ok'""",
            (day,),
        ).fetchall()


def test_nightly_summary_tells_failed_clusters_from_failed_llm_requests(seeded_url):
    with FakeOpenAI(retry_after=0.01) as fake:
        env = {
            "DATABASE_URL": seeded_url,
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": fake.base_url,
            "COLUMNS": "400",
        }
        nightly = ("nightly", "--llm", "openai", "--timeout", "30")

        # Two requests fail and their retries succeed: no cluster fails, two requests did.
        fake.plan("500", "429")
        first = run_cli(*nightly, "--date", DAY.isoformat(), env=env)
        assert first.returncode == 0, first.stderr
        assert _ledger(seeded_url, DAY)[0] == 0
        failed = _failed_requests(seeded_url, DAY)
        assert sum(status == "error" for status, _, _ in failed) == 2  # the 500 and the 429
        # Besides them, only a title clash between two clusters generated at once (the later one's answer is
        # refused as invalid and asked again), whose cluster then got its pool.
        assert all(status == "invalid" and pooled for status, _, pooled in failed if status != "error")
        failed_requests, total = _ledger(seeded_url, DAY)[1:]
        assert _row(first.stdout, "failed clusters") == "0"
        assert _row(first.stdout, "failed or unfinished LLM requests").startswith(f"{failed_requests} of {total} today")
        assert not re.search(r"^\W*failures\b", first.stdout, re.MULTILINE)

        # Every Glam cluster answers invalid JSON twice: those clusters fail, two requests each.
        fake.reset()
        fake.always("invalid_json", match="_Glam_")
        day = date(2026, 4, 21)
        second = run_cli(*nightly, "--date", day.isoformat(), env=env)
        assert second.returncode == 4, second.stderr  # some clusters failed
        clusters, failed_requests, total = _ledger(seeded_url, day)
        failed = _failed_requests(seeded_url, day)
        assert clusters >= 1 and sum(glam for _, glam, _ in failed) == 2 * clusters
        assert all(pooled for _, glam, pooled in failed if not glam)  # (a title clash, asked again: see above)
        assert _row(second.stdout, "failed clusters").startswith(f"{clusters}: {day:%Y%m%d}_Glam_")
        assert _row(second.stdout, "failed or unfinished LLM requests").startswith(
            f"{failed_requests} of {total} today"
        )


# -------------------------------------------------------------- experiment --
COSINE_UP = '{"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}'


def _rows(out: str) -> list[list[str]]:
    """The cells of each row of a rich table (drawn between │, the header's between ┃)."""
    return [[c.strip() for c in re.split("[│┃]", line)[1:-1]] for line in out.splitlines() if line[:1] in "│┃"]


def _cells(out: str, first: str) -> list[str]:
    """The cells after the first of the rich table row whose first cell is `first`."""
    for row in _rows(out):
        if row and row[0] == first:
            return row[1:]
    raise AssertionError(f"no {first!r} row in:\n{out}")


def _experiment_state(url: str) -> list[tuple]:
    """Every experiment, variant and logged change, as the database holds them."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT e.name, e.ended_at IS NULL, v.variant, v.control, v.share, v.weights, "
            "       (SELECT array_agg(c.change ORDER BY c.id) FROM ootd.experiment_changes c WHERE c.experiment = e.name) "
            "FROM ootd.experiments e JOIN ootd.experiment_variants v ON v.experiment = e.name "
            "ORDER BY e.name, v.position"
        ).fetchall()


def test_experiment_start_shares_results_list_and_end(served_url):
    env = {"DATABASE_URL": served_url, "COLUMNS": "250"}
    none = run_cli("experiment", "list", env=env)
    assert none.returncode == 0 and none.stdout.startswith("no experiment has been started")
    start = run_cli("experiment", "start", "cosine_up", COSINE_UP, env=env)
    assert start.returncode == 0, start.stderr
    assert _cells(start.stdout, "control (control)") == ["50%", "the weights in force"]
    assert _cells(start.stdout, "more_cosine") == ["50%", "cosine 1.5"]

    shares = run_cli("experiment", "shares", "cosine_up", '{"control": 0.8, "more_cosine": 0.2}', env=env)
    assert shares.returncode == 0, shares.stderr
    assert _cells(shares.stdout, "more_cosine") == ["20%", "cosine 1.5"]
    assert [(r[2], float(r[4]), r[6]) for r in _experiment_state(served_url)] == [
        ("control", 0.8, ["start", "shares"]),
        ("more_cosine", 0.2, ["start", "shares"]),
    ]

    with psycopg.connect(served_url) as conn:  # likes of users 1..40 after the shares changed
        conn.execute("SELECT ootd.like(u.id, (SELECT min(o.id) FROM ootd.outfits o)) FROM generate_series(1, 40) u(id)")
        conn.execute(
            "SELECT ootd.like(u.id, (SELECT max(o.id) FROM ootd.outfits o)) FROM generate_series(1, 40, 4) u(id)"
        )
        conn.commit()
        expected = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT x.variant, count(DISTINCT u.id), count(k.user_id), count(DISTINCT k.user_id) "
                "FROM ootd.users u CROSS JOIN LATERAL ootd.experiment_of(u.id) x "
                "LEFT JOIN ootd.likes k ON k.user_id = u.id GROUP BY x.variant"
            )
        }
    assert set(expected) == {"control", "more_cosine"} and sum(e[1] for e in expected.values()) == 50
    assert 7_500 < expected["control"][0] < 8_500  # 80% of the 10,000 users

    results = run_cli("experiment", "results", "--min-days", "0", env=env)  # rates after seconds (default: 1 day)
    assert results.returncode == 0, results.stderr
    assert "Experiment cosine_up (running)" in results.stdout
    table = {row[0]: row[1:] for row in reversed(_rows(results.stdout))}  # a label's first row wins
    assert table[""] == ["control (control)", "more_cosine"]  # the header: a column per variant
    assert table["share"] == ["80%", "20%"]
    assert table["users"] == [f"{expected[v][0]:,}" for v in ("control", "more_cosine")]
    assert table["likes"] == [f"{expected[v][1]:,}" for v in ("control", "more_cosine")]
    assert table["users who liked"] == [f"{expected[v][2]:,}" for v in ("control", "more_cosine")]
    assert table["diff vs control"][0] == table["95% CI"][0] == "-"  # the control against itself
    # the treatment's difference to the control inside its 95% CI (per day over seconds: large numbers)
    diff, ci = table["diff vs control"][1], re.fullmatch(r"\[([+-]\d+\.\d{4}), ([+-]\d+\.\d{4})\]", table["95% CI"][1])
    assert ci and float(ci[1]) < float(diff) < float(ci[2]), results.stdout

    listed = run_cli("experiment", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert _cells(listed.stdout, "cosine_up")[0] == "running"
    assert "more_cosine 20%: cosine 1.5" in listed.stdout

    end = run_cli("experiment", "end", "cosine_up", env=env)
    assert end.returncode == 0, end.stderr
    assert end.stdout.startswith("experiment cosine_up ended at ")
    assert [r[1] for r in _experiment_state(served_url)] == [False, False]
    after = run_cli("experiment", "results", "cosine_up", env=env)
    assert after.returncode == 0 and "Experiment cosine_up (ended)" in after.stdout
    assert _cells(run_cli("experiment", "list", env=env).stdout, "cosine_up")[0] == "ended"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("start", "second", '{"control": {"share": 1}, "b": {"share": 0}}'),
            'experiment "cosine_up" is running: an experiment covers every user, so one runs at a time '
            "(SQLSTATE 55006)",
        ),
        (("start", "cosine_up", COSINE_UP), 'experiment "cosine_up" already exists (SQLSTATE 42710)'),
        (("shares", "cosine_up", '{"more_cosine": 0.6}'), "the shares must add up to 1, got 1.1 (SQLSTATE 22023)"),
        (
            ("shares", "cosine_up", '{"nope": 0.5}'),
            'experiment "cosine_up" has no variant "nope" (variants: control, more_cosine) (SQLSTATE 22023)',
        ),
        (("shares", "other", '{"control": 1}'), "unknown experiment 'other' (SQLSTATE P0002)"),
        (("end", "other"), "unknown experiment 'other' (SQLSTATE P0002)"),
        (("results", "other"), "unknown experiment 'other'"),
    ],
)
def test_experiment_errors_print_the_database_message_and_change_nothing(db_url, args, message):
    env = {"DATABASE_URL": db_url}
    assert run_cli("experiment", "start", "cosine_up", COSINE_UP, env=env).returncode == 0
    before = _experiment_state(db_url)
    result = run_cli("experiment", *args, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == f"ootd: error: {message}"
    assert _experiment_state(db_url) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (("start", "Bad-Name", COSINE_UP), "an experiment name is a lowercase letter"),
        (("start", "fine", '{"control": {"share": 0.5}, "b": {"share": 0.4}}'), "the shares must add up to 1, got 0.9"),
        (
            ("start", "fine", '{"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosin": 1}}}'),
            'variant "b": unknown weight "cosin"',
        ),
        (("start", "fine", COSINE_UP, "--control", "nope"), 'the control "nope" is not one of the variants'),
    ],
)
def test_experiment_start_refuses_bad_variants_and_starts_nothing(db_url, args, message):
    result = run_cli("experiment", *args, env={"DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.startswith(f"ootd: error: {message}") and "(SQLSTATE 22023)" in result.stderr
    assert _experiment_state(db_url) == []
    ended = run_cli("experiment", "results", env={"DATABASE_URL": db_url})
    assert ended.returncode == 1 and ended.stderr.strip() == "ootd: error: no experiment has been started"


def test_experiment_json_arguments_are_checked_before_the_database(empty_db_url):
    result = run_cli("experiment", "start", "x", '{"control": ', env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 2 and "malformed JSON" in result.stderr
    result = run_cli("experiment", "shares", "x", "[0.5]", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 2 and "expected a JSON object" in result.stderr
