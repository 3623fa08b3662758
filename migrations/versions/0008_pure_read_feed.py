"""Hardening: no setting skips validation, put_user merges, cities in any case, LLM requests recorded before sending, the cache keeps today.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_pure_read_feed.up.sql")


def downgrade() -> None:
    run_sql_file("0008_pure_read_feed.down.sql")
