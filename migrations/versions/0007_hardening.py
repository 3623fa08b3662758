"""Hardening: no setting skips validation, put_user merges, cities in any case, LLM requests recorded before sending, the cache keeps today.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_hardening.up.sql")


def downgrade() -> None:
    run_sql_file("0007_hardening.down.sql")
