"""Alembic revisions and db/schema.sql describe the same database."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

from db import REPO_ROOT, schema_sql
from db.server import EmbeddedServer, bin_dir
from tests.conftest import create_database, drop_database

REFERENCE_TABLES = [
    "archetypes",
    "categories",
    "colors",
    "weather_conditions",
    "cities",
    "timezones",
    "scoring_weights",
]


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    """Plain `alembic ...` from the repository root, as a DBA would run it."""
    env = {k: v for k, v in os.environ.items() if k != "OOTD_HOME"}
    env["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def schema_dump(url: str) -> str:
    """pg_dump --schema-only, minus Alembic's bookkeeping and volatile lines."""
    return _dump("pg_dump", "--schema-only", "--exclude-table=public.alembic_version", url)


def _dump(program: str, *args: str) -> str:
    """A pg_dump/pg_dumpall script without comments, blank lines and the random \\restrict key."""
    result = subprocess.run([str(bin_dir() / program), *args], capture_output=True, text=True, check=True)
    lines = [
        ln
        for ln in result.stdout.splitlines()
        if ln and not ln.startswith("--") and not ln.startswith("\\restrict") and not ln.startswith("\\unrestrict")
    ]
    return "\n".join(lines)


def reference_data(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"SELECT * FROM ootd.{t} ORDER BY 1").fetchall()
            for t in REFERENCE_TABLES
            if t != "scoring_weights"
        } | {
            "scoring_weights": conn.execute("SELECT to_jsonb(w) - 'updated_at' FROM ootd.scoring_weights w").fetchall()
        }


def test_schema_from_db_dir_equals_schema_from_migrations(empty_db_url: str, template_url: str):
    with psycopg.connect(empty_db_url) as conn:
        conn.execute(schema_sql())
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
        assert not re.search(r"schema_sql|schema_files|from db import|DB_DIR|['\"]db/", text), path
    for path in versions:
        for name in re.findall(r'run_sql_file\("([^"]+)"\)', path.read_text()):
            assert (REPO_ROOT / "migrations" / "sql" / name).is_file(), name


# ------------------------------------------------ every downgrade, step by step --
def revision_steps() -> list[tuple[str, str]]:
    """(r, r+1) for every revision in Alembic's chain, oldest first; the first r is "base"."""
    script = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini")))
    return [(s.down_revision or "base", s.revision) for s in reversed(list(script.walk_revisions()))]


STEPS = revision_steps()
ORDER = ["base"] + [after for _, after in STEPS]

# Every ordinary table outside PostgreSQL's schemas, extension members and Alembic's bookkeeping aside.
TABLES_SQL = r"""
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND (n.nspname, c.relname) <> ('public', 'alembic_version')
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
# What pg_dump (without --create) leaves out: extension versions, sequence positions,
# the database's own privileges and settings.
CATALOG_STATE_SQL = r"""
SELECT 'extension ' || extname || ' ' || extversion FROM pg_catalog.pg_extension
UNION ALL
SELECT 'sequence ' || schemaname || '.' || sequencename || ' ' || coalesce(last_value::text, 'unused')
FROM pg_catalog.pg_sequences WHERE schemaname <> 'information_schema' AND schemaname NOT LIKE 'pg\_%'
UNION ALL
SELECT 'database owner ' || pg_catalog.pg_get_userbyid(datdba) || ' acl ' || coalesce(datacl::text, 'default')
       || ' connlimit ' || datconnlimit FROM pg_catalog.pg_database WHERE datname = current_database()
UNION ALL
SELECT 'database setting ' || coalesce(pg_catalog.pg_get_userbyid(NULLIF(s.setrole, 0)), 'all roles') || ' '
       || s.setconfig::text
FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
WHERE d.datname = current_database()
ORDER BY 1
"""


def revision_state(url: str) -> str:
    """Everything a revision leaves in a database, as diff-friendly text: pg_dump's schema (objects,
    owners, grants, default privileges), every table's rows (the reference data the migrations
    insert: pg_dump --schema-only has none), the cluster's roles and memberships (pg_dumpall
    --roles-only), and what neither dump shows (extension versions, sequences, the database's ACL)."""
    parts = ["== schema (pg_dump --schema-only)", schema_dump(url)]
    with psycopg.connect(url) as conn:
        parts.append("== rows")
        for schema, table in conn.execute(TABLES_SQL).fetchall():
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM {}.{} t").format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall()
            parts += [f"{schema}.{table}: {row}" for row in sorted(r for (r,) in rows)]
        parts.append("== catalog")
        parts += [line for (line,) in conn.execute(CATALOG_STATE_SQL).fetchall()]
    parts += [
        "== roles (pg_dumpall --roles-only)",
        _dump("pg_dumpall", "--roles-only", "--no-role-passwords", f"--dbname={url}"),
    ]
    return "\n".join(parts)


def current_revision(url: str) -> str:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return "base"
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else "base"


def move_to(url: str, revision: str) -> None:
    """Upgrade or downgrade the database to `revision` (a no-op when it is there already)."""
    now = current_revision(url)
    if now != revision:
        verb = "upgrade" if ORDER.index(revision) > ORDER.index(now) else "downgrade"
        result = alembic(url, verb, revision)
        assert result.returncode == 0, f"alembic {verb} {revision}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def walked_db_url(pg_server: EmbeddedServer) -> Iterator[str]:
    """One empty database walked up the chain by the parametrized steps below (cheaper than one per step)."""
    name = create_database(pg_server, None)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.mark.parametrize(("before", "after"), STEPS, ids=[f"{b}-{a}" for b, a in STEPS])
def test_every_downgrade_restores_the_previous_revision_exactly(walked_db_url: str, before: str, after: str):
    """Upgrading `before` to `after` and downgrading again leaves exactly the state of `before`:
    schema, owners, grants, default privileges, reference rows, sequences, roles (revision_state).

    The steps are read from Alembic's chain, so a new revision is covered without editing this
    test.  The database is empty: a downgrade that would destroy data refuses (migrations/guard.py),
    which tests/test_downgrade_guard.py proves with users, likes and pools in; here an empty
    database lets every downgrade run and isolates what it must restore.  The steps share one
    database, walked up the chain in order (a step run alone upgrades a fresh one to `before`).
    """
    move_to(walked_db_url, before)
    expected = revision_state(walked_db_url)

    up = alembic(walked_db_url, "upgrade", after)
    assert up.returncode == 0, f"alembic upgrade {after}:\n{up.stdout}{up.stderr}"
    down = alembic(walked_db_url, "downgrade", before)
    assert down.returncode == 0, f"alembic downgrade {before}:\n{down.stdout}{down.stderr}"
    assert current_revision(walked_db_url) == before

    restored = revision_state(walked_db_url)
    diff = "\n".join(
        difflib.unified_diff(
            expected.splitlines(),
            restored.splitlines(),
            f"at {before}",
            f"at {before}, after {after} and down again",
            lineterm="",
            n=2,
        )
    )
    assert not diff, f"downgrade {after} -> {before} does not restore {before} exactly:\n{diff}"


# ------------------------------------------------------ concurrent migrations --
def test_three_concurrent_ootd_migrate_all_succeed_and_migrate_once(empty_db_url: str, template_url: str):
    """Two would otherwise race to CREATE the same types (23505 on pg_type_typname_nsp_index): an
    advisory lock makes the others wait, then find nothing to do."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import run_cli

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: run_cli("migrate", env={"DATABASE_URL": empty_db_url}), range(3)))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "migrated to head\n"
        assert "Traceback" not in result.stderr
    head = ScriptDirectory.from_config(Config(str(REPO_ROOT / "alembic.ini"))).get_current_head()
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
    assert schema_dump(empty_db_url) == schema_dump(template_url)


def test_plain_alembic_waits_for_the_migration_lock(empty_db_url: str, template_url: str):
    """A DBA's `alembic upgrade head` takes the same lock as `ootd migrate` (migrations/env.py), before
    it reads alembic_version: while another session holds it, alembic waits and has run nothing."""
    from migrations.lock import MIGRATIONS, release_lock, wait_for_lock

    env = {k: v for k, v in os.environ.items() if k != "OOTD_HOME"} | {"DATABASE_URL": empty_db_url}
    with psycopg.connect(empty_db_url, autocommit=True) as holder:

        def execute(statement: str, params: dict) -> list:
            return holder.execute(statement, params).fetchall()

        wait_for_lock(execute, MIGRATIONS, "test")
        dba = subprocess.Popen(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            waiting = 0
            for _ in range(600):  # until alembic's backend waits on the advisory lock
                waiting = holder.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchone()[0]
                if waiting or dba.poll() is not None:
                    break
                holder.execute("SELECT pg_sleep(0.1)")
            assert waiting == 1, dba.communicate()
            assert holder.execute("SELECT to_regnamespace('ootd')").fetchone() == (None,)
        finally:
            release_lock(execute, MIGRATIONS)
        out, err = dba.communicate(timeout=300)
    assert dba.returncode == 0, out + err
    assert "waiting for another migration of this database" in err
    assert schema_dump(empty_db_url) == schema_dump(template_url)
