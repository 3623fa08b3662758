"""Issue 27, the rest, one revision in parts (each part's SQL in its own pair of files):
a) the online evaluation's arms: the pool ceiling (each user's best 3 of their own pool by the truth);
b) NDCG against the hidden truth, next to the circular oracle's (`ootd evaluate`);
c) the neighbour draw off by default (simulated users did not reward it).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

PARTS = ("0019a_online_arms", "0019b_truth_ndcg", "0019c_neighbours_off")


def upgrade() -> None:
    for part in PARTS:
        run_sql_file(f"{part}.up.sql")


def downgrade() -> None:
    for part in reversed(PARTS):
        run_sql_file(f"{part}.down.sql")
