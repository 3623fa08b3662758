"""A/B experiments on the scoring weights (issue 20): experiments, variants and their log; the
feed, feed_explain and simulate gain a trailing variant column; ootd.experiment_results;
ootd.evaluate_variants.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0015_experiments.up.sql")


def downgrade() -> None:
    run_sql_file("0015_experiments.down.sql")
