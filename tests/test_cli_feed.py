"""`ootd feed USER [--at T] [--limit N]` and `ootd --version` (issue 25, item 13)."""

from __future__ import annotations

from importlib.metadata import version

import psycopg

from tests.conftest import SERVED_DAY, run_cli

AT = f"{SERVED_DAY}T16:00:00+00:00"


def test_feed_prints_what_ootd_feed_returns(served_url, tmp_path):
    result = run_cli(
        "feed", "7", "--at", AT, "--limit", "5", env={"DATABASE_URL": served_url, "OOTD_HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(served_url) as conn:
        rows = conn.execute(
            "SELECT rank, outfit_id, title, category, color, daypart, headline, cluster_id FROM ootd.feed(7, %s, 5)",
            (AT,),
        ).fetchall()
    lines = result.stdout.splitlines()
    assert lines[0] == f"user 7 at {SERVED_DAY}T16:00+00:00, cluster {rows[0][7]}: {rows[0][6]}"
    assert len(lines) >= 1 + len(rows) == 6
    for line, (rank, outfit_id, title, category, color, daypart, _, _) in zip(lines[1:], rows):
        cells = line.split()
        assert cells[:2] == [str(rank), str(outfit_id)]
        assert title in line and f" {category} " in line and f" {color} " in line and f" {daypart} " in line


def test_feed_without_an_offset_is_utc(served_url, tmp_path):
    env = {"DATABASE_URL": served_url, "OOTD_HOME": str(tmp_path)}
    naive = run_cli("feed", "7", "--at", f"{SERVED_DAY}T16:00", env=env)
    explicit = run_cli("feed", "7", "--at", AT, env=env)
    assert naive.returncode == 0, naive.stderr
    assert naive.stdout == explicit.stdout


def test_feed_errors_are_one_line(served_url, tmp_path):
    env = {"DATABASE_URL": served_url, "OOTD_HOME": str(tmp_path)}
    unknown = run_cli("feed", "99999999", "--at", AT, env=env)
    assert unknown.returncode == 1 and unknown.stderr.startswith("ootd: error: ") and "99999999" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    limit = run_cli("feed", "7", "--at", AT, "--limit", "21", env=env)
    assert limit.returncode == 1 and limit.stderr.startswith("ootd: error: "), limit.stderr
    bad_at = run_cli("feed", "7", "--at", "yesterday", env=env)
    assert bad_at.returncode == 2 and "expected an ISO 8601 time" in bad_at.stderr


def test_version(tmp_path):
    result = run_cli("--version", env={"OOTD_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ootd {version('ootd')}"
