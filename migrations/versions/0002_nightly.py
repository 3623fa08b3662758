"""Nightly batch: weather, SQL clustering, cluster demand, pool storage, cache refresh, ledger, cost view.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0002_nightly.up.sql")


def downgrade() -> None:
    run_sql_file("0002_nightly.down.sql")
