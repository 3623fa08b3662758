"""A leaner likes trigger: one like is one UPDATE; the likes trigger also forgets memoized feeds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0006_likes_lean.up.sql")


def downgrade() -> None:
    run_sql_file("0006_likes_lean.down.sql")
