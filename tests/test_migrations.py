"""Alembic revisions and db/schema.sql describe the same database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import psycopg

from db import REPO_ROOT, SCHEMA_FILE
from db.server import bin_dir

REFERENCE_TABLES = ["archetypes", "categories", "colors", "weather_conditions", "cities", "timezones",
                    "scoring_weights"]


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    """Plain `alembic ...` from the repository root, as a DBA would run it."""
    env = {k: v for k, v in os.environ.items() if k != "OOTD_HOME"}
    env["DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def schema_dump(url: str) -> str:
    """pg_dump --schema-only, minus Alembic's bookkeeping and volatile lines."""
    result = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--exclude-table=public.alembic_version", url],
        capture_output=True, text=True, check=True,
    )
    lines = [ln for ln in result.stdout.splitlines()
             if ln and not ln.startswith("--") and not ln.startswith("\\restrict") and not ln.startswith("\\unrestrict")]
    return "\n".join(lines)


def reference_data(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM ootd.{t} ORDER BY 1").fetchall() for t in REFERENCE_TABLES
                if t != "scoring_weights"} | {
            "scoring_weights": conn.execute(
                "SELECT preferred_color, liked_category, category_affinity, cosine, daypart_priority, "
                "liked_decay, served_decay, jitter FROM ootd.scoring_weights").fetchall()}


def test_schema_from_db_dir_equals_schema_from_migrations(empty_db_url: str, template_url: str):
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(SCHEMA_FILE.read_text())
    from_db_dir = schema_dump(empty_db_url)
    from_migrations = schema_dump(template_url)
    assert "CREATE TABLE ootd.users" in from_db_dir
    assert from_db_dir == from_migrations
    assert reference_data(empty_db_url) == reference_data(template_url)


def test_upgrade_downgrade_base_upgrade_round_trip(empty_db_url: str):
    up = alembic(empty_db_url, "upgrade", "head")
    assert up.returncode == 0, up.stderr
    first = schema_dump(empty_db_url)

    down = alembic(empty_db_url, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ootd'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_default_acl").fetchone()[0] == 0
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == []

    again = alembic(empty_db_url, "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert schema_dump(empty_db_url) == first


def test_downgrade_keeps_roles_that_another_database_still_uses(empty_db_url: str, template_url: str):
    assert alembic(empty_db_url, "upgrade", "head").returncode == 0
    down = alembic(empty_db_url, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    with psycopg.connect(template_url) as conn:  # the template still owns objects as ootd_owner
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'ootd\\_%'").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM ootd.users").fetchone()[0] == 0


def test_revisions_never_read_sql_from_db_dir():
    versions = list((REPO_ROOT / "migrations" / "versions").glob("*.py"))
    assert versions
    helpers = [REPO_ROOT / "migrations" / "sqlfile.py", REPO_ROOT / "migrations" / "env.py"]
    for path in versions + helpers:
        text = path.read_text()
        assert not re.search(r"schema\.sql|SCHEMA_FILE|DB_DIR|['\"]db/", text), path
    for path in versions:
        for name in re.findall(r'run_sql_file\("([^"]+)"\)', path.read_text()):
            assert (REPO_ROOT / "migrations" / "sql" / name).is_file(), name
