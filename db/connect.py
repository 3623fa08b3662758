"""The one connector: where the DSN comes from, how connections are made, and
how database errors become domain errors.

Nothing outside this module opens a cursor.  Batch steps and API views call
named queries from `db/queries.sql` (see `db.queries`) through `run` / `one`
/ `all_rows` / `copy_rows`, with bound parameters only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

__all__ = ["Jsonb", "DatabaseError", "connect", "database_url", "run", "one", "all_rows", "copy_rows",
           "copy_chunks", "sqlalchemy_url"]

from db.queries import query


def database_url() -> str:
    """`DATABASE_URL` if set, else the embedded default (started on demand)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from db.server import default_server

    return default_server().ensure_running()


def sqlalchemy_url(url: str | None = None) -> str:
    """The same DSN spelled for SQLAlchemy's psycopg 3 dialect (used by Alembic)."""
    url = url or database_url()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
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
    try:
        conn = psycopg.connect(url or database_url(), autocommit=autocommit, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise DatabaseError("08006", f"cannot connect to the database: {_first_line(exc)}") from exc
    with conn:
        _configure(conn)
        try:
            yield conn
        except psycopg.Error as exc:
            raise DatabaseError.from_psycopg(exc) from exc


def run(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> None:
    """Execute the named query, ignoring any result."""
    conn.execute(query(name), params)


def one(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> dict | None:
    """First row of the named query as a dict, or None."""
    return conn.execute(query(name), params).fetchone()


def all_rows(conn: psycopg.Connection, name: str, params: Sequence[Any] | dict | None = None) -> list[dict]:
    return conn.execute(query(name), params).fetchall()


def copy_rows(conn: psycopg.Connection, name: str, rows: Iterable[Sequence[Any]],
              types: Sequence[str] | None = None) -> None:
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

    def __str__(self) -> str:
        text = f"{self.message} (SQLSTATE {self.sqlstate})"
        if self.detail:
            text += f"; {self.detail}"
        return text


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
