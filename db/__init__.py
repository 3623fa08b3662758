"""SQL source of truth (`schema.sql`, `queries.sql`) and the small Python that
connects to PostgreSQL and runs the embedded default server."""

from pathlib import Path

DB_DIR = Path(__file__).resolve().parent
REPO_ROOT = DB_DIR.parent
SCHEMA_FILE = DB_DIR / "schema.sql"
