"""Neighbour pools (issue 17, item 3) and one ranking for the feed and the simulator (issue 18).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0013_neighbour_pools.up.sql")


def downgrade() -> None:
    run_sql_file("0013_neighbour_pools.down.sql")
