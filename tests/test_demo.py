"""`ootd demo`, the README's first command, end to end against a real database."""

from __future__ import annotations

import psycopg

from tests.conftest import run_cli


def test_demo_migrates_seeds_runs_the_nightly_and_prints_feeds(empty_db_url):
    result = run_cli("demo", "--users", "2000", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "schema: migrated to head" in out
    assert "seed: 2,000 new users" in out
    assert "clusters K" in out and "naive: one call per user" in out
    assert "look for your morning in" in out and "look for tonight in" in out
    with psycopg.connect(empty_db_url) as conn:
        k = conn.execute("SELECT count(*) FROM ootd.pools").fetchone()[0]
        assert k == conn.execute("SELECT count(*) FROM ootd.llm_calls WHERE kind = 'chat'").fetchone()[0] > 0
    again = run_cli("demo", "--users", "2000", env={"DATABASE_URL": empty_db_url})
    assert again.returncode == 0, again.stderr
    assert "seed: 0 new users, 2,000 already present" in again.stdout
    assert f"({k} already done, 0 generated now)" in again.stdout
