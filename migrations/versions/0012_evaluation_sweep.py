"""Evaluation sweep (issue 17, item 2): ootd.evaluate_sweep() weighs clusterings against their LLM calls.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0012_evaluation_sweep.up.sql")


def downgrade() -> None:
    run_sql_file("0012_evaluation_sweep.down.sql")
