"""Headlines name the occasion of their items (from the served pool); the veto cascade fills the feed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_occasion_and_cascade.up.sql")


def downgrade() -> None:
    run_sql_file("0010_occasion_and_cascade.down.sql")
