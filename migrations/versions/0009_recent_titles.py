"""Don't repeat yesterday at generation: ootd.recent_titles(day), the titles each archetype x weather served in the 3 days before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_recent_titles.up.sql")


def downgrade() -> None:
    run_sql_file("0009_recent_titles.down.sql")
