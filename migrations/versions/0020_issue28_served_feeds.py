"""Issue 28: serving at lookup speed, one revision in parts (each part's SQL in its own pair of files):
a) served feeds: each user's ranked feed per local date, computed ahead by the writers of its inputs,
   read by ootd.feed with one index probe while current, ranked live otherwise.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

PARTS = ("0020a_served_feeds",)


def upgrade() -> None:
    for part in PARTS:
        run_sql_file(f"{part}.up.sql")


def downgrade() -> None:
    for part in reversed(PARTS):
        run_sql_file(f"{part}.down.sql")
