"""Issue 27's quality work, one revision in parts (each part's SQL in its own pair of files):
a) titles unique across a date's pools and the 3 days before;
b) simulated users' hidden truth (schema ootd_truth, which no ranking function reads);
c) the archetype term of the score (style_dna.archetype_affinity, scoring_weights.archetype).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

PARTS = ("0018a_titles", "0018b_truth", "0018c_archetype", "0018d_online")


def upgrade() -> None:
    for part in PARTS:
        run_sql_file(f"{part}.up.sql")


def downgrade() -> None:
    for part in reversed(PARTS):
        run_sql_file(f"{part}.down.sql")
