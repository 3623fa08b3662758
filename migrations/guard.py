"""Downgrades refuse to destroy data unless the DBA says so.

PostgreSQL DDL is transactional and env.py runs a whole `alembic downgrade`
in one transaction, so every downgrade step, current and future, is checked
generically, before it runs:

1. probe: run the step's downgrade() in a savepoint, list the logged tables
   (any schema but PostgreSQL's own) and the columns of surviving tables that
   it drops, roll back;
2. measure, in the state before the step: rows of those tables, non-NULL
   values of those columns (UNLOGGED tables are caches, never data; so are
   logged tables whose comment starts with "Derived:": they are computed
   again from the others, as ootd.served_feeds is);
3. only if something held data: in a savepoint, downgrade and then upgrade
   the step again, read what it put back, roll back.  What that re-upgrade
   puts back is not lost: the reference rows a migration itself inserts
   (archetypes, cities, prices, the scoring weights...) and column values
   equal to what the upgrade re-adds (its DEFAULT, compared row by row through
   the primary key).  The rest is lost, compared by content, not counted:
   - a dropped table the upgrade reinstalls rows into: every row compared,
     column by column as text, with the reinstalled ones, through the primary
     key (a row added, deleted or edited counts: "1 added (Havana), 1 deleted
     (Torrance)", "1 edited (gpt-4o-mini)"), or as a multiset of whole rows
     without one.  Columns the install generates anew each time are not
     compared: identity columns and DEFAULTs that call a function that is not
     IMMUTABLE (`updated_at DEFAULT now()` holds the time of the first
     install, not data);
   - a dropped table it reinstalls nothing into: all its rows;
   - a dropped column: its non-NULL values that differ from the re-added ones.
   If that cannot be measured (the upgrade fails there, a table has no
   primary key for a column's values), everything the objects held counts
   as lost.

After the last step, if anything would be lost and the DBA did not pass
`-x allow-data-loss=true` (`ootd migrate --allow-data-loss`), DowngradeRefused
is raised: the transaction rolls back and nothing changes.  Online mode only:
`alembic downgrade --sql` writes a script and drops nothing itself.

Only what a step drops is measured: a downgrade that rewrites the values of a
column it keeps (0004's removes a key from users.style_dna) is not.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
  AND coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '') NOT LIKE 'Derived:%%'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname, a.attnum
"""

# A table's columns whose value an INSERT that leaves them out generates anew each time: identity
# columns, and DEFAULTs calling a function (or an SQL value function such as CURRENT_TIMESTAMP or
# session_user) that is not IMMUTABLE, read from the default's expression tree.
GENERATED_SQL = r"""
SELECT a.attname
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relname = %s)
  AND a.attnum > 0 AND NOT a.attisdropped
  AND (a.attidentity <> ''
       OR d.adbin::text ~ '\{(SQLVALUEFUNCTION|NEXTVALUEEXPR) '
       OR EXISTS (SELECT 1 FROM regexp_matches(d.adbin::text, ':(?:func|opfunc)id (\d+)', 'g') AS m (id)
                  JOIN pg_catalog.pg_proc p ON p.oid = m.id[1]::oid
                  WHERE p.provolatile <> 'i'))
"""
EXAMPLES = 3  # keys named per kind of change


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
    changes: list[str] = field(default_factory=list)  # against the rows the upgrade reinstalls: "1 added (Havana)"

    def __str__(self) -> str:
        if self.column:
            return f"column {self.table}.{self.column} ({plural(self.rows, 'value')})"
        if self.changes:
            return f"{self.table} ({plural(self.rows, 'row')}, not as the migration reinstalls them: {', '.join(self.changes)})"
        return f"{self.table} ({plural(self.rows, 'row')})"


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
            reinstalled: dict[tuple[str, str], tuple[list[str], list[tuple]]] = {}
            for k, n in rows.items():
                if k in now and count_rows(cur, now[k]):
                    columns = compared_columns(cur, before[k], now[k])
                    reinstalled[k] = (columns, contents(cur, now[k], columns))
                else:
                    losses.append(Loss(before[k].label, n))
            for k, held in values.items():
                differ = compare(cur, before[k], now.get(k), list(held), stashes[k]) if k in stashes else held
                losses += [Loss(before[k].label, n, column=c) for c, n in differ.items() if n]
        # back in the state before the step: its rows against the reinstalled ones
        for k, (columns, again) in reinstalled.items():
            changes = row_changes(before[k], columns, contents(cur, before[k], columns), again)
            if changes:
                losses.append(Loss(before[k].label, rows[k], changes=changes))
    except Exception:  # noqa: BLE001 - e.g. the upgrade cannot run here: then everything held counts as lost
        losses = [Loss(before[k].label, n) for k, n in rows.items()]
        losses += [Loss(before[k].label, n, column=c) for k, held in values.items() for c, n in held.items()]
    return losses


def compared_columns(cur: psycopg.Cursor, before: Table, now: Table) -> list[str]:
    """The columns a row's content is compared on: all it had, less those the install generates."""
    generated = {c for (c,) in cur.execute(GENERATED_SQL, (now.schema, now.name)).fetchall()}
    return [c for c in before.columns if c not in generated]


def contents(cur: psycopg.Cursor, table: Table, columns: list[str]) -> list[tuple]:
    """The table's rows, `columns` as text (NULL for one it does not have)."""
    select = [
        sql.SQL("{}::text").format(sql.Identifier(c)) if c in table.columns else sql.SQL("NULL::text") for c in columns
    ]
    return cur.execute(sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), table.ident)).fetchall()


def row_changes(table: Table, columns: list[str], held: list[tuple], again: list[tuple]) -> list[str]:
    """How the rows held differ from those the upgrade reinstalls: added, edited (same primary key,
    other content) and deleted rows, named by key; without a key among `columns`, whole rows compared
    as multisets (added: held and not reinstalled, deleted: reinstalled and not held)."""
    if not table.key or any(k not in columns for k in table.key):
        return describe_changes(
            added=[None] * sum((Counter(held) - Counter(again)).values()),
            deleted=[None] * sum((Counter(again) - Counter(held)).values()),
        )
    at = [columns.index(k) for k in table.key]

    def keyed(rows: list[tuple]) -> dict[str, tuple]:
        return {key_label(tuple(row[i] for i in at)): row for row in rows}

    mine, theirs = keyed(held), keyed(again)
    return describe_changes(
        added=[k for k in mine if k not in theirs],
        edited=[k for k in mine if k in theirs and mine[k] != theirs[k]],
        deleted=[k for k in theirs if k not in mine],
    )


def key_label(values: tuple) -> str:
    return values[0] if len(values) == 1 else f"({', '.join(values)})"


def describe_changes(**kinds: list[str | None]) -> list[str]:
    """{"added": ["Havana"]} -> ["1 added (Havana)"]; at most EXAMPLES keys named per kind."""
    described = []
    for kind, keys in kinds.items():
        if not keys:
            continue
        named = sorted(k for k in keys if k is not None)
        shown = ", ".join(named[:EXAMPLES]) + (f" and {len(named) - EXAMPLES:,} more" if len(named) > EXAMPLES else "")
        described.append(f"{len(keys):,} {kind}" + (f" ({shown})" if named else ""))
    return described


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
