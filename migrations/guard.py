"""Downgrades refuse to destroy data unless the DBA says so.

PostgreSQL DDL is transactional and env.py runs a whole `alembic downgrade`
in one transaction, so every downgrade step, current and future, is checked
generically, before it runs:

1. probe: run the step's downgrade() in a savepoint, list the logged tables
   (any schema but PostgreSQL's own) and the columns of surviving tables that
   it drops, roll back;
2. measure, in the state before the step: rows of those tables, non-NULL
   values of those columns (UNLOGGED tables are caches, never data);
3. only if something held data: in a savepoint, downgrade and then upgrade
   the step again, roll back.  What that re-upgrade puts back is not lost: the
   reference rows a migration itself inserts (archetypes, cities, prices...)
   and column values equal to what the upgrade re-adds (its DEFAULT, compared
   row by row through the primary key).  The rest is lost: a table's rows
   beyond the re-installed count, a column's non-NULL values that differ.
   If that cannot be measured (the upgrade fails there, a table has no
   primary key), everything the objects held counts as lost.

After the last step, if anything would be lost and the DBA did not pass
`-x allow-data-loss=true` (`ootd migrate --allow-data-loss`), DowngradeRefused
is raised: the transaction rolls back and nothing changes.  Online mode only:
`alembic downgrade --sql` writes a script and drops nothing itself.

Known blind spot: a table's rows are compared by count, so edited reference
rows (e.g. tuned ootd.scoring_weights, the same one row) are not detected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from alembic.util import CommandError
from psycopg import sql

X_ARGUMENT = "allow-data-loss"
CONFIG_ATTRIBUTE = "allow_data_loss"  # Config.attributes key set by `ootd migrate --allow-data-loss`
TRUE = {"", "1", "true", "yes", "on"}  # a bare `-x allow-data-loss` counts as true
FALSE = {"0", "false", "no", "off"}

# Logged tables and their columns; extension members and PostgreSQL's own
# schemas (pg_catalog, pg_toast, pg_temp_N, information_schema) excluded.
CATALOG_SQL = r"""
SELECT n.nspname, c.relname, a.attname, coalesce(a.attnum = ANY (i.indkey::int2[]), false) AS in_key
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relkind IN ('r', 'p')
  AND c.relpersistence = 'p'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname, a.attnum
"""


class DowngradeRefused(CommandError):
    """A downgrade would destroy data and allow-data-loss was not given (alembic prints FAILED: ..., exit 1)."""


@dataclass
class Table:
    schema: str
    name: str
    columns: list[str]
    key: list[str]  # primary key columns, [] without one

    @property
    def ident(self) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class Loss:
    table: str
    rows: int
    column: str | None = None
    reinstalled: int = 0  # rows the step's upgrade puts back (tables only)

    def __str__(self) -> str:
        if self.column:
            return f"column {self.table}.{self.column} ({plural(self.rows, 'value')})"
        extra = f", {self.reinstalled:,} of them reinstalled by the migration" if self.reinstalled else ""
        return f"{self.table} ({plural(self.rows, 'row')}{extra})"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def parse_allow(value: str | bool | None) -> bool:
    """`-x allow-data-loss=...`: true/false (yes/no, on/off, 1/0); anything else is refused, not guessed."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise CommandError(f"-x {X_ARGUMENT} expects true or false, got {value!r}")


# ------------------------------------------------------------------ catalog --
def catalog(cur: psycopg.Cursor) -> dict[tuple[str, str], Table]:
    tables: dict[tuple[str, str], Table] = {}
    for schema, name, column, in_key in cur.execute(CATALOG_SQL).fetchall():
        table = tables.setdefault((schema, name), Table(schema, name, [], []))
        if column is not None:
            table.columns.append(column)
            if in_key:
                table.key.append(column)
    return tables


def scalar_row(cur: psycopg.Cursor, query: sql.Composable) -> tuple:
    return cur.execute(query).fetchone()


def count_rows(cur: psycopg.Cursor, table: Table) -> int:
    return scalar_row(cur, sql.SQL("SELECT count(*) FROM {}").format(table.ident))[0]


def count_values(cur: psycopg.Cursor, table: Table, columns: list[str]) -> dict[str, int]:
    """Non-NULL values per column, one scan."""
    counts = scalar_row(
        cur,
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("count({})").format(sql.Identifier(c)) for c in columns), table.ident
        ),
    )
    return dict(zip(columns, counts))


@contextmanager
def probe(cur: psycopg.Cursor, name: str) -> Iterator[None]:
    """A savepoint that is always rolled back: whatever runs inside leaves no trace."""
    savepoint = sql.Identifier(name)
    cur.execute(sql.SQL("SAVEPOINT {}").format(savepoint))
    try:
        yield
    finally:
        cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(savepoint))
        cur.execute(sql.SQL("RELEASE SAVEPOINT {}").format(savepoint))


# --------------------------------------------------------------------- step --
def step_losses(cur: psycopg.Cursor, downgrade: Callable[[], Any], upgrade: Callable[[], Any]) -> list[Loss]:
    """What one downgrade step would destroy, measured without changing anything."""
    before = catalog(cur)
    with probe(cur, "ootd_guard_probe"):
        downgrade()
        after = catalog(cur)
    gone_tables = [t for k, t in before.items() if k not in after]
    gone_columns = {k: [c for c in t.columns if c not in after[k].columns] for k, t in before.items() if k in after}

    # the state before the step: what the dropped objects hold
    rows: dict[tuple[str, str], int] = {}
    for t in gone_tables:
        n = count_rows(cur, t)
        if n:
            rows[(t.schema, t.name)] = n
    values: dict[tuple[str, str], dict[str, int]] = {}
    for k, columns in gone_columns.items():
        if columns:
            held = {c: n for c, n in count_values(cur, before[k], columns).items() if n}
            if held:
                values[k] = held
    if not rows and not values:
        return []

    losses: list[Loss] = []
    try:
        with probe(cur, "ootd_guard_reinstall"):
            stashes = {
                k: stash(cur, before[k], list(held), i) for i, (k, held) in enumerate(values.items()) if before[k].key
            }
            downgrade()
            upgrade()
            now = catalog(cur)
            for k, n in rows.items():
                fresh = count_rows(cur, now[k]) if k in now else 0
                if n > fresh:
                    losses.append(Loss(before[k].label, n, reinstalled=fresh))
            for k, held in values.items():
                differ = compare(cur, before[k], now.get(k), list(held), stashes[k]) if k in stashes else held
                losses += [Loss(before[k].label, n, column=c) for c, n in differ.items() if n]
    except Exception:  # noqa: BLE001 - e.g. the upgrade cannot run here: then everything held counts as lost
        losses = [Loss(before[k].label, n) for k, n in rows.items()]
        losses += [Loss(before[k].label, n, column=c) for k, held in values.items() for c, n in held.items()]
    return losses


def stash(cur: psycopg.Cursor, table: Table, columns: list[str], i: int) -> sql.Composable:
    """Copy primary key and the columns' non-NULL values to a temporary table (k0.., v0..)."""
    name = sql.SQL("pg_temp.{}").format(sql.Identifier(f"ootd_guard_stash_{i}"))
    select = [sql.SQL("{} AS {}").format(sql.Identifier(c), sql.Identifier(f"k{j}")) for j, c in enumerate(table.key)]
    select += [sql.SQL("{} AS {}").format(sql.Identifier(c), sql.Identifier(f"v{j}")) for j, c in enumerate(columns)]
    where = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns)
    cur.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WHERE {}").format(
            name, sql.SQL(", ").join(select), table.ident, where
        )
    )
    return name


def compare(
    cur: psycopg.Cursor, before: Table, now: Table | None, columns: list[str], stashed: sql.Composable
) -> dict[str, int]:
    """Per column: stashed non-NULL values the re-upgraded table does not hold (as text) in the same row."""
    missing = [c for c in columns if now is None or c not in now.columns]
    if now is None or any(k not in now.columns for k in before.key):
        missing = columns
    join = sql.SQL(" AND ").join(
        sql.SQL("t.{} = s.{}").format(sql.Identifier(k), sql.Identifier(f"k{j}")) for j, k in enumerate(before.key)
    )
    counts = [
        sql.SQL("count(*) FILTER (WHERE s.{v} IS NOT NULL)").format(v=sql.Identifier(f"v{j}"))
        if c in missing
        else sql.SQL("count(*) FILTER (WHERE s.{v} IS NOT NULL AND s.{v}::text IS DISTINCT FROM t.{c}::text)").format(
            v=sql.Identifier(f"v{j}"), c=sql.Identifier(c)
        )
        for j, c in enumerate(columns)
    ]
    source = (
        sql.SQL("{} s").format(stashed)
        if missing == columns
        else sql.SQL("{} s LEFT JOIN {} t ON {}").format(stashed, now.ident, join)
    )
    return dict(zip(columns, scalar_row(cur, sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(counts), source))))


# ------------------------------------------------------------------ wrapper --
class DowngradeGuard:
    """Wraps the work function Alembic's command hands to the MigrationContext (its `fn`).

    The wrapper yields the same steps; before yielding a downgrade step it
    measures what that step would destroy, and after the last step it refuses
    (raises inside the still-open transaction) unless data loss is allowed.
    """

    def __init__(self, allow_data_loss: bool, out=None) -> None:
        self.allow_data_loss = allow_data_loss
        self.out = out or sys.stderr

    def wrap(self, fn: Callable[..., Iterable[Any]]) -> Callable[..., Iterator[Any]]:
        def guarded(heads: tuple[str, ...], ctx) -> Iterator[Any]:
            losses: list[Loss] = []
            start, end = label(heads), None
            for step in fn(heads, ctx):
                script = getattr(step, "revision", None)
                if step.is_downgrade and script is not None:
                    cur = ctx.connection.connection.driver_connection.cursor()
                    with cur:
                        losses += step_losses(cur, script.module.downgrade, script.module.upgrade)
                    end = label(step.to_revisions_no_deps)
                yield step
            if losses:
                self.verdict(f"downgrade {start} -> {end}", merge(losses))

        return guarded

    def verdict(self, what: str, losses: list[Loss]) -> None:
        listed = ", ".join(str(loss) for loss in losses)
        if not self.allow_data_loss:
            raise DowngradeRefused(
                f"{what} would destroy data: {listed}; nothing was changed. Re-run with "
                f"-x {X_ARGUMENT}=true (ootd migrate --allow-data-loss) to drop them."
            )
        print(f"{what}: dropping {listed} ({X_ARGUMENT})", file=self.out)


def label(revisions: Iterable[str]) -> str:
    return ", ".join(revisions) or "base"


def merge(losses: list[Loss]) -> list[Loss]:
    """Tables first, in order; a column's loss is left out when its whole table goes later."""
    dropped = {loss.table for loss in losses if loss.column is None}
    return [loss for loss in losses if loss.column is None] + [
        loss for loss in losses if loss.column is not None and loss.table not in dropped
    ]


# ------------------------------------------------------- `ootd migrate` help --
def is_downgrade(config, connection, revision: str) -> bool:
    """Is `revision` behind the database's current revision (so `ootd migrate --revision` must go down)?"""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError

    if revision in ("head", "heads") or revision.startswith("+"):
        return False
    heads = MigrationContext.configure(connection).get_current_heads()
    if not heads:
        return False
    if revision == "base" or revision.startswith("-"):
        return True
    script = ScriptDirectory.from_config(config)
    try:
        target = script.get_revision(revision)
        if target is None:
            return False
        return any(
            target.revision != head and target.revision in {s.revision for s in script.iterate_revisions(head, "base")}
            for head in heads
        )
    except RevisionError:  # unknown or ambiguous: let `alembic upgrade` say so
        return False
