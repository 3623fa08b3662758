"""ootd.generate_pool(p_cluster_id): PL/Python where the server has plpython3u, else a stub raising 0A000.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Which case applies is decided here, on the server being migrated:
plpython3u must be available (pg_available_extensions) and the migrating
role a superuser (an untrusted language admits no one else).  Otherwise the
stub goes in, and an `alembic upgrade --sql` script (which cannot ask the
server) always gets the stub.  To switch a database later, e.g. after
installing postgresql-plpython3-NN: `alembic downgrade 0004 && alembic
upgrade head`.

Frozen SQL (migrations/sql/0005_generate_pool.*.sql), with the one exception
the design asks for: the PL/Python body is not a hand-kept copy but the text
of batch/plpython_body.py, read at upgrade time, so the database and the
batch run one implementation.
"""

import importlib.util
import logging
from pathlib import Path

from alembic import context, op

from migrations.sqlfile import SQL_DIR, run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STUB_SQL = "0005_generate_pool.stub.up.sql"
PLPYTHON_SQL = "0005_generate_pool.plpython.up.sql"
DOWN_SQL = "0005_generate_pool.down.sql"
BODY_MODULE = "batch.plpython_body"
BODY_CALL = "return generate_pool(plpy, p_cluster_id, SD)"
BODY_MARKER = "@BODY@"
DETECT = """
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plpython3u') AS available,
       (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) AS superuser
"""

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    if context.is_offline_mode():
        run_sql_file(STUB_SQL)
        return
    install(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    run_sql_file(DOWN_SQL)


def install(connection) -> str:
    """Install the PL/Python function or the stub through a DB-API connection; returns which."""
    with connection.cursor() as cur:
        cur.execute(DETECT)
        available, superuser = cur.fetchone()
        if available and not superuser:
            log.warning(
                "plpython3u is available, but only a superuser can create PL/Python functions: "
                "installing the ootd.generate_pool stub (use `ootd nightly`)"
            )
        kind = "plpython" if available and superuser else "stub"
        cur.execute(plpython_sql() if kind == "plpython" else (SQL_DIR / STUB_SQL).read_text())
    return kind


def plpython_sql() -> str:
    """The frozen PL/Python DDL with the body rendered from batch/plpython_body.py."""
    template = (SQL_DIR / PLPYTHON_SQL).read_text()
    if template.count(BODY_MARKER) != 1:
        raise RuntimeError(f"{PLPYTHON_SQL} must contain {BODY_MARKER} exactly once")
    return template.replace(BODY_MARKER, render_body())


def render_body(call: str = BODY_CALL) -> str:
    """batch/plpython_body.py followed by the line that calls it: the function body, verbatim."""
    spec = importlib.util.find_spec(BODY_MODULE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot find {BODY_MODULE}: install ootd (pip install -e .) before migrating")
    source = Path(spec.origin).read_text()
    if "$plpython$" in source or BODY_MARKER in source:
        raise RuntimeError(f"{spec.origin} must not contain $plpython$ or {BODY_MARKER}")
    return source.rstrip("\n") + "\n\n" + call
