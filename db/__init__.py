"""SQL source of truth (`sql/*.sql`, one file per concern, and `queries.sql`)
and the small Python that connects to PostgreSQL and runs the embedded
default server."""

from pathlib import Path

DB_DIR = Path(__file__).resolve().parent
REPO_ROOT = DB_DIR.parent
SQL_DIR = DB_DIR / "sql"


def schema_files() -> list[Path]:
    """The schema's files in load order (their names start with it: 01_roles_and_schema.sql ...)."""
    return sorted(SQL_DIR.glob("[0-9][0-9]_*.sql"))


def schema_sql() -> str:
    """The whole schema as one script, to run in one transaction (what migrations must equal)."""
    return "\n".join(path.read_text() for path in schema_files())
