"""Likes: ootd.like / ootd.unlike, the trigger that learns style_dna and taste, ootd.serving_status.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0004_likes.up.sql")


def downgrade() -> None:
    run_sql_file("0004_likes.down.sql")
