"""Foundation: roles, reference data, users, pools, outfits, cache, likes, ledger, weights.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0001_foundation.up.sql")


def downgrade() -> None:
    run_sql_file("0001_foundation.down.sql")
