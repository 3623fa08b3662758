"""Least privilege: who may read, write and execute what."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import errors

from db import REPO_ROOT


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
        seeded.execute("UPDATE ootd.cities SET population_k = 1")
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("DELETE FROM ootd.scoring_weights")
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


def test_analyst_tunes_the_scoring_weights_with_update_within_their_ranges(seeded):
    """The README (and the table's COMMENT) say analysts tune the weights with UPDATE: they can."""
    as_role(seeded, "ootd_analyst")
    seeded.execute("UPDATE ootd.scoring_weights SET cosine = 2")
    assert seeded.execute("SELECT cosine FROM ootd.scoring_weights").fetchone()["cosine"] == 2
    with pytest.raises(errors.CheckViolation):  # the ranges still hold (scoring_weights_in_range)
        seeded.execute("UPDATE ootd.scoring_weights SET liked_decay = 2")
    with pytest.raises(errors.InsufficientPrivilege):
        seeded.execute("INSERT INTO ootd.scoring_weights DEFAULT VALUES")


def test_api_role_cannot_rehydrate_the_cache(seeded):
    """Refilling the cache writes 9,400 rows a day: the batch's and the owner's, never the API's."""
    as_role(seeded, "ootd_api")
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        seeded.execute("SELECT ootd.rehydrate_cache('2026-12-20', 100000)")
    assert caught.value.diag.message_primary == "permission denied for function rehydrate_cache"


# ------------------------------------------------ the README's role table --
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
GRANTEES = ("ootd_api", "ootd_batch", "ootd_analyst")


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def role_rows(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """Per role: the README's "may execute" and "table privileges" cells, rendered from the catalog:
    every ootd function the role may execute, every privilege it holds on every ootd table or view."""
    relations = [
        r["relname"]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'ootd'::regnamespace AND relkind IN ('r', 'p', 'v', 'm')"
        ).fetchall()
    ]
    rows = {}
    for role in GRANTEES:
        functions = conn.execute(
            "SELECT DISTINCT p.proname FROM pg_proc p WHERE p.pronamespace = 'ootd'::regnamespace "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE')",
            (role,),
        ).fetchall()
        cells = []
        for privilege in TABLE_PRIVILEGES:
            held = [
                r["relname"]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'ootd'::regnamespace "
                    "AND c.relkind IN ('r', 'p', 'v', 'm') AND has_table_privilege(%s, c.oid, %s)",
                    (role, privilege),
                ).fetchall()
            ]
            if held:
                cells.append(
                    f"{privilege}: " + ("every table and view" if set(held) == set(relations) else _names(held))
                )
        rows[role] = (_names([r["proname"] for r in functions]) or "none", "; ".join(cells) or "none")
    return rows


def readme_role_rows() -> dict[str, tuple[str, str]]:
    """The README's role table: role -> (may execute, table privileges)."""
    text = (REPO_ROOT / "README.md").read_text()
    header = "| role | for | may execute (`ootd.`) | table privileges |"
    assert text.count(header) == 1, "README.md has no role table (or two)"
    lines = text[text.index(header) :].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 4, line
        rows[cells[0].strip("`")] = (cells[2], cells[3])
    return rows


def test_the_readme_role_table_lists_exactly_each_roles_grants(conn):
    """Every ootd function and table a role may use is in the README's table, and nothing else is."""
    expected = role_rows(conn)
    documented = readme_role_rows()
    assert set(documented) == {"ootd_owner", *GRANTEES}
    paste = "\n".join(f"| `{role}` | ... | {cells[0]} | {cells[1]} |" for role, cells in expected.items())
    for role in GRANTEES:
        assert documented[role] == expected[role], f"README.md's role table disagrees with the grants; rows:\n{paste}"


def test_the_role_table_check_sees_a_grant_the_readme_lacks(conn):
    """The rendering is of the live grants: one more grant is one more name in the row (the check can fail)."""
    before = role_rows(conn)["ootd_api"]
    conn.execute("GRANT EXECUTE ON FUNCTION ootd.rehydrate_cache(date, integer) TO ootd_api")
    conn.execute("GRANT SELECT ON ootd.cities TO ootd_api")
    after = role_rows(conn)["ootd_api"]
    assert "`rehydrate_cache`" in after[0] and "`rehydrate_cache`" not in before[0]
    assert (before[1], after[1]) == ("none", "SELECT: `cities`")
    assert after != readme_role_rows()["ootd_api"]
