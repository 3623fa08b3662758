"""The embedded default server: started on demand, reused, shared safely."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from db.server import EmbeddedServer, bin_dir
from tests.conftest import run_cli


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    yield home
    EmbeddedServer(home).stop("immediate") if (home / "pgdata" / "PG_VERSION").exists() else None


def test_db_url_starts_the_server_under_ootd_home_and_psql_connects(home: Path):
    first = run_cli("db", "url", env={"OOTD_HOME": str(home)})
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert url.startswith("postgresql://postgres@/ootd?host=")
    assert (home / "pgdata" / "PG_VERSION").exists()

    again = run_cli("db", "url", env={"OOTD_HOME": str(home)})
    assert again.stdout.strip() == url  # reused, not restarted

    psql = subprocess.run(
        [str(bin_dir() / "psql"), url, "-Atc", "SELECT name FROM pg_available_extensions WHERE name = 'vector'"],
        capture_output=True,
        text=True,
    )
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.strip() == "vector"


def test_default_home_is_dot_ootd_in_the_working_directory(tmp_path: Path):
    result = run_cli("db", "url", cwd=tmp_path)
    try:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / ".ootd" / "pgdata" / "PG_VERSION").exists()
    finally:
        EmbeddedServer((tmp_path / ".ootd").resolve()).stop("immediate")


def test_two_commands_starting_at_once_share_one_server(home: Path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: run_cli("db", "url", env={"OOTD_HOME": str(home)}), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert results[0].stdout == results[1].stdout
    with psycopg.connect(results[0].stdout.strip()) as conn:
        # one postmaster, and it is the one recorded in postmaster.pid
        pid = int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
        backend_parent = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()
        assert backend_parent is not None
        assert (
            conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()[0] == 1
        )
    assert pid > 0


def test_stop_and_status(home: Path):
    env = {"OOTD_HOME": str(home)}
    assert run_cli("db", "start", env=env).returncode == 0
    status = run_cli("db", "status", env=env)
    assert status.returncode == 0 and status.stdout.startswith("running")
    stop = run_cli("db", "stop", env=env)
    assert stop.stdout.strip() == "stopped"
    status = run_cli("db", "status", env=env)
    assert status.returncode == 3 and status.stdout.startswith("stopped")
    assert run_cli("db", "stop", env=env).stdout.strip() == "not running"


def test_database_url_replaces_the_embedded_server(db_url: str, tmp_path: Path):
    result = run_cli("db", "url", env={"DATABASE_URL": db_url}, cwd=tmp_path)
    assert result.stdout.strip() == db_url
    assert not (tmp_path / ".ootd").exists()  # nothing embedded was started

    stop = run_cli("db", "stop", env={"DATABASE_URL": db_url}, cwd=tmp_path)
    assert stop.returncode == 1
    assert stop.stderr.strip() == "ootd: error: 'ootd db stop' manages the embedded server; DATABASE_URL is set"


def test_unreachable_database_url_is_one_clear_line():
    result = run_cli("seed", "--users", "10", env={"DATABASE_URL": "postgresql://nobody@/nowhere?host=/nonexistent"})
    assert result.returncode == 1
    assert result.stderr.startswith("ootd: error: cannot connect to the database")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_command_run_elsewhere_says_which_server_it_started_and_that_it_needs_migrate(tmp_path: Path):
    """Without OOTD_HOME, `ootd` in another directory starts a server there: it says so, and what to do."""
    home = (tmp_path / ".ootd").resolve()
    try:
        first = run_cli("summary", cwd=tmp_path)
        assert first.returncode == 1
        started, error = first.stderr.strip().splitlines()
        assert started == f"ootd: created and started the embedded PostgreSQL in {home} (set OOTD_HOME to use another)"
        url = EmbeddedServer(home).dsn()
        assert error == (
            f"ootd: error: the database has no ootd schema ({url}): run 'ootd migrate' first "
            f"(the embedded server's data is in {home}; OOTD_HOME chooses another) (SQLSTATE 42P01)"
        )

        again = run_cli("summary", cwd=tmp_path)  # already running: only the error, still naming the directory
        assert again.returncode == 1
        assert again.stderr.strip() == error
    finally:
        stop = run_cli("db", "stop", cwd=tmp_path)
        assert stop.returncode == 0 and stop.stdout.strip() in ("stopped", "not running"), stop.stderr
