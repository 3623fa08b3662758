"""Likes learn in a trigger again, exactly (issue 26): statement-level triggers on ootd.likes fold
every writer's likes into the profile (ootd._learn); users keep their stated profile and exact sums
over their likes, so an unlike restores the profile bit for bit.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0017_likes_trigger.up.sql")


def downgrade() -> None:
    run_sql_file("0017_likes_trigger.down.sql")
