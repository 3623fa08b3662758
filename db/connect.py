"""The one connector: where the DSN comes from, how connections are made, and
how database errors become domain errors.

Nothing outside this module opens a cursor.  Batch steps and API views call
named queries from `db/queries.sql` (see `db.queries`) through `run` / `one`
/ `all_rows` / `copy_rows`, with bound parameters only.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

__all__ = [
    "Jsonb",
    "DatabaseError",
    "connect",
    "database_url",
    "run",
    "one",
    "all_rows",
    "copy_rows",
    "copy_chunks",
    "sqlalchemy_url",
    "rehydrate_cache",
]

from db.queries import query


def database_url() -> str:
    """`DATABASE_URL` if set, else the embedded default (started on demand, saying where on stderr).

    A server this call starts may have stopped by crashing, which empties the UNLOGGED pool cache:
    it is refilled then (`rehydrate_cache`), whatever the caller goes on to do.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from db.server import default_server

    started = []

    def announce(line: str) -> None:
        started.append(line)
        print(line, file=sys.stderr, flush=True)

    url = default_server().ensure_running(announce=announce)
    if started:
        rehydrate_cache(url)
    return url


def rehydrate_cache(url: str) -> int:
    """Refill the UNLOGGED pool cache if a crash emptied it (a no-op otherwise), saying so on stderr.

    Best effort: a database without the schema yet, a role that may not
    call it, or a hot standby (which can neither read nor write an UNLOGGED
    table) is left alone (feeds are right without the cache, only slower).
    Returns the rows restored.
    """
    try:
        with connect(url) as conn:
            restored = one(conn, "rehydrate_cache")["restored"]
    except DatabaseError as exc:
        # no schema / no function / no privilege / a standby: unlogged table, read-only transaction
        if exc.sqlstate not in ("3F000", "42883", "42501", "25006"):
            raise
        return 0
    if restored:
        print(
            f"ootd: the pool cache was empty after a crash: restored {restored:,} rows from durable storage",
            file=sys.stderr,
        )
    return restored


def redact(url: str) -> str:
    """The DSN without its password (URL or `key=value` form), for messages."""
    if "://" in url:
        url = re.sub(r"^([a-z0-9+.-]+://[^:/?#@]*):[^@/?#]*@", r"\1@", url, flags=re.IGNORECASE)
        url = re.sub(r"([?&])password=[^&#]*&?", r"\1", url).rstrip("?&")
        return url
    return re.sub(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "", url).strip()


def sqlalchemy_url(url: str | None = None) -> str:
    """The same DSN spelled for SQLAlchemy's psycopg 3 dialect (used by Alembic)."""
    url = url or database_url()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure(conn: psycopg.Connection) -> None:
    """Register pgvector's adapters when the extension exists in this database."""
    try:
        from pgvector.psycopg import register_vector

        register_vector(conn)
    except psycopg.ProgrammingError:
        pass  # vector type not installed yet (before `ootd migrate`)


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A configured connection; commits on success, rolls back on error."""
    url = url or database_url()
    try:
        conn = psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise DatabaseError("08006", f"cannot connect to the database: {_first_line(exc)}") from exc
    with conn:
        _configure(conn)
        try:
            yield conn
        except psycopg.Error as exc:
            error = DatabaseError.from_psycopg(exc)
            if error.names_missing_ootd_object():
                error = error.not_migrated(url)
            raise error from exc


def run(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> None:
    """Execute the named query, ignoring any result."""
    conn.execute(query(name), params)


def one(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> dict | None:
    """First row of the named query as a dict, or None."""
    return conn.execute(query(name), params).fetchone()


def all_rows(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
    return conn.execute(query(name), params).fetchall()


def copy_rows(
    conn: psycopg.Connection, name: str, rows: Iterable[Sequence[Any]], types: Sequence[str] | None = None
) -> None:
    """Stream rows through the named `COPY ... FROM STDIN` query (binary when `types` is given)."""
    with conn.cursor() as cur, cur.copy(query(name)) as copy:
        if types:
            copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def copy_chunks(conn: psycopg.Connection, name: str, chunks: Iterable[bytes]) -> None:
    """Stream pre-formatted COPY text through the named `COPY ... FROM STDIN` query."""
    with conn.cursor() as cur, cur.copy(query(name)) as copy:
        for chunk in chunks:
            if chunk:
                copy.write(chunk)


@dataclass
class DatabaseError(Exception):
    """A database error with its SQLSTATE and a one-line message for people."""

    sqlstate: str
    message: str
    detail: str | None = None
    hint: str | None = None

    @classmethod
    def from_psycopg(cls, exc: psycopg.Error) -> "DatabaseError":
        diag = exc.diag
        return cls(
            sqlstate=diag.sqlstate or "XX000",
            message=diag.message_primary or _first_line(exc),
            detail=diag.message_detail,
            hint=diag.message_hint,
        )

    def names_missing_ootd_object(self) -> bool:
        """Schema ootd, or a table or function in it, does not exist: `ootd migrate` was not run."""
        return self.sqlstate in _UNDEFINED_STATES and bool(_OOTD_OBJECT.search(self.message))

    def not_migrated(self, url: str) -> DatabaseError:
        """This error, reworded to say which database lacks the schema and what to run."""
        where = redact(url)
        if _has_ootd_schema(url):
            message = (
                f"the ootd schema in the database ({where}) is not up to date ({self.message}): run 'ootd migrate'"
            )
        else:
            message = f"the database has no ootd schema ({where}): run 'ootd migrate' first"
        if not os.environ.get("DATABASE_URL"):
            from db.server import default_server

            server = default_server()
            if url == server.dsn():
                message += f" (the embedded server's data is in {server.home}; OOTD_HOME chooses another)"
        return DatabaseError(self.sqlstate, message, hint=self.hint)

    def __str__(self) -> str:
        text = f"{self.message} (SQLSTATE {self.sqlstate})"
        if self.detail:
            text += f"; {self.detail}"
        return text


#: undefined schema, table or function
_UNDEFINED_STATES = frozenset({"3F000", "42P01", "42883"})
# ootd's schemas: ootd, and ootd_truth (the simulated users' truth, since 0018).
_OOTD_OBJECT = re.compile(r'\bootd(?:_truth)?\.|schema "ootd(?:_truth)?"')


def _has_ootd_schema(url: str) -> bool:
    """Whether schema ootd exists (asked on a connection of its own: the caller's has failed)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute("SELECT to_regnamespace('ootd') IS NOT NULL").fetchone()[0]
    except psycopg.Error:
        return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
