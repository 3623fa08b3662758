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


def test_the_missing_schema_message_hides_the_password(empty_db_url, tmp_path):
    with_password = empty_db_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")
    assert with_password != empty_db_url
    result = run_cli("summary", env={"DATABASE_URL": with_password, "OOTD_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stderr
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
        assert _ledger(seeded_url, DAY)[:2] == (0, 2)
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
        assert clusters >= 1 and failed_requests == 2 * clusters
        assert _row(second.stdout, "failed clusters").startswith(f"{clusters}: {day:%Y%m%d}_Glam_")
        assert _row(second.stdout, "failed or unfinished LLM requests").startswith(
            f"{failed_requests} of {total} today"
        )
