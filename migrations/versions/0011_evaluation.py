"""Evaluation (issue 17): ootd.evaluate() measures the illusion of 1:1 against an oracle; ootd.evaluations keeps one row per run.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0011_evaluation.up.sql")


def downgrade() -> None:
    run_sql_file("0011_evaluation.down.sql")
