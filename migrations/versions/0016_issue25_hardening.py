"""Issue 25's hardening, one revision in parts (each part's SQL in its own pair of files):
a) one home for every number's range: scoring weights, experiments' and what-if weights, profile numbers;
   experiment results below a minimum exposure; bounded analyst work;
b) API tokens: a per-user token generation (revocation);
c) the API role's logging of client errors;
d) readiness on Citus: ootd.unreachable_nodes().

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Frozen: this revision runs only its own SQL (migrations/sql/), never db/.
"""

from migrations.sqlfile import run_sql_file

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

PARTS = ("0016a_bounds", "0016b_tokens", "0016c_api_logging", "0016d_citus_readiness")


def upgrade() -> None:
    for part in PARTS:
        run_sql_file(f"{part}.up.sql")


def downgrade() -> None:
    for part in reversed(PARTS):
        run_sql_file(f"{part}.down.sql")
