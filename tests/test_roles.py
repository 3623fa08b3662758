"""Least privilege: who may read, write and execute what."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors


@pytest.fixture
def seeded(conn):
    conn.execute("SELECT ootd.put_user(1, 'Torrance')")
    return conn


def as_role(conn: psycopg.Connection, role: str):
    conn.execute(f"SET ROLE {role}")


def test_api_role_cannot_read_users_directly(seeded):
    as_role(seeded, "ootd_api")
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        seeded.execute("SELECT * FROM ootd.users")
    assert caught.value.sqlstate == "42501"
    assert caught.value.diag.message_primary == "permission denied for table users"


@pytest.mark.parametrize("table", ["users", "outfits", "pool_cache", "likes", "llm_calls", "scoring_weights", "cities"])
def test_api_role_has_no_table_privileges_at_all(seeded, table):
    row = seeded.execute(
        "SELECT has_table_privilege('ootd_api', %s, 'SELECT,INSERT,UPDATE,DELETE') AS any", (f"ootd.{table}",)
    ).fetchone()
    assert row["any"] is False


def test_analyst_reads_everything_and_writes_nothing(seeded):
    as_role(seeded, "ootd_analyst")
    assert seeded.execute("SELECT count(*) AS n FROM ootd.users").fetchone()["n"] == 1
    assert seeded.execute("SELECT count(*) AS n FROM ootd.llm_calls").fetchone()["n"] == 0
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("UPDATE ootd.scoring_weights SET cosine = 2")
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("DELETE FROM ootd.users")
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("SELECT ootd.put_user(2, 'Paris')")


def test_batch_writes_the_ledger_but_not_users(seeded):
    as_role(seeded, "ootd_batch")
    seeded.execute(
        "INSERT INTO ootd.llm_calls (pool_date, cluster_id, provider, kind, model, status, latency_ms) "
        "VALUES ('2026-04-20', '20260420_Minimal_Sunny', 'offline', 'chat', 'offline', 'ok', 1)"
    )
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("UPDATE ootd.users SET city = 'Paris'")


def test_public_cannot_execute_ootd_functions(seeded):
    seeded.execute("CREATE ROLE ootd_test_nobody NOLOGIN")
    try:
        as_role(seeded, "ootd_test_nobody")
        with pytest.raises(errors.InsufficientPrivilege):
            seeded.execute("SELECT * FROM ootd.users")  # no USAGE on the schema for PUBLIC
        seeded.execute("RESET ROLE")
        rows = seeded.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'ootd' AND has_function_privilege('ootd_test_nobody', p.oid, 'EXECUTE')"
        ).fetchall()
        assert rows == []
    finally:
        seeded.execute("RESET ROLE")
        seeded.execute("DROP ROLE ootd_test_nobody")


def test_ootd_owner_owns_every_object_and_cannot_log_in(seeded):
    owners = seeded.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'ootd' "
        "UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ootd'"
    ).fetchall()
    assert owners == [{"owner": "ootd_owner"}]
    login = seeded.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'ootd\\_%' ORDER BY 1"
    ).fetchall()
    assert [(r["rolname"], r["rolcanlogin"]) for r in login] == [
        ("ootd_analyst", False),
        ("ootd_api", False),
        ("ootd_batch", False),
        ("ootd_owner", False),
    ]


def test_pool_cache_is_unlogged_and_outfits_are_durable(seeded):
    rows = seeded.execute(
        "SELECT relname, relpersistence FROM pg_class WHERE relnamespace = 'ootd'::regnamespace "
        "AND relname IN ('pool_cache', 'outfits', 'pools') ORDER BY relname"
    ).fetchall()
    assert [(r["relname"], r["relpersistence"]) for r in rows] == [
        ("outfits", "p"),
        ("pool_cache", "u"),
        ("pools", "p"),
    ]
