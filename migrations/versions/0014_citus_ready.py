"""One schema for a single PostgreSQL and a Citus cluster (issue 19, part 2): no triggers on
distributed tables (users validated by a CHECK, likes learned by ootd.like / ootd.unlike),
PL/pgSQL user_clusters / cluster_demand, the scoring weights' CHECK of its columns.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0014_citus_ready.up.sql")


def downgrade() -> None:
    run_sql_file("0014_citus_ready.down.sql")
