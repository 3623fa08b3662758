"""One migration of a database at a time: a session advisory lock.

Two migrations started together (`ootd migrate` twice, or with a DBA's
`alembic upgrade head`) would both read an empty alembic_version and race to
CREATE the same objects: the loser fails with a raw 23505 on
pg_type_typname_nsp_index.  So migrations/env.py takes MIGRATIONS on the
connection that runs the revisions, before its transaction begins (so even
at REPEATABLE READ the transaction's snapshot is taken after the wait): the
second waits, then reads the first's committed alembic_version and finds
nothing to do.  `ootd migrate` also holds OOTD_MIGRATE, on a connection of its
own, around everything it does (its Citus detection, the revisions, the
distribution that follows them on a coordinator); a different key, so the
two never wait for each other.

The keys are the two-int form (classid, objid), so `pg_locks` shows them as
classid 1869575268 (b'ootd') and objid 1 or 2.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from db.queries import query

NAMESPACE = int.from_bytes(b"ootd", "big")  # 1869575268
MIGRATIONS = 1  # alembic: the revisions and alembic_version
OOTD_MIGRATE = 2  # `ootd migrate`: detection, revisions, Citus distribution

#: `execute(named query, params) -> rows`: the caller's connection (SQLAlchemy's in env.py, psycopg's in cli).
Execute = Callable[[str, dict[str, int]], list[Any]]


def _key(objid: int) -> dict[str, int]:
    return {"namespace": NAMESPACE, "key": objid}


def wait_for_lock(execute: Execute, objid: int, what: str, out=None) -> None:
    """Take the session lock (NAMESPACE, objid), saying so on stderr when another session holds it and
    this one waits."""
    if execute(query("migration_try_lock"), _key(objid))[0][0]:
        return
    holders = execute(query("migration_lock_holders"), _key(objid))[0][0]
    print(
        f"{what}: waiting for another migration of this database to finish (server pid {holders or '?'})",
        file=out or sys.stderr,
        flush=True,
    )
    execute(query("migration_lock"), _key(objid))


def release_lock(execute: Execute, objid: int) -> None:
    execute(query("migration_unlock"), _key(objid))
