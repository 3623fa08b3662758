"""Run one frozen SQL file from migrations/sql/ inside Alembic's transaction.

Online, the file goes to psycopg as one multi-statement string (no bind
parameters, so `:names` and `%` in SQL bodies are left alone); offline
(`alembic upgrade head --sql`) it is emitted verbatim.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context, op

SQL_DIR = Path(__file__).resolve().parent / "sql"


def run_sql_file(name: str) -> None:
    sql = (SQL_DIR / name).read_text()
    if context.is_offline_mode():
        op.execute(sql)
        return
    dbapi_connection = op.get_bind().connection.driver_connection
    with dbapi_connection.cursor() as cur:
        cur.execute(sql)
