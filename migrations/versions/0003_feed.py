"""Serving: ootd.feed and ootd.feed_explain, cache rehydration, cluster_overview and cache_health views.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0003_feed.up.sql")


def downgrade() -> None:
    run_sql_file("0003_feed.down.sql")
