"""Issue 28: the ranking set-based, one revision in parts (each part's SQL in its own pair of files):
a) ootd._rank_all ranks many requests in one query (the ranking's one home); ootd._rank is one request
   of it, and the served feeds' writer ranks a whole batch of users and dates with one call.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

PARTS = ("0021a_set_based_ranking",)


def upgrade() -> None:
    for part in PARTS:
        run_sql_file(f"{part}.up.sql")


def downgrade() -> None:
    for part in reversed(PARTS):
        run_sql_file(f"{part}.down.sql")
