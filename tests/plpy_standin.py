"""A stand-in for PL/Python's `plpy`, backed by psycopg on a real database.

PL/Python bodies (batch/plpython_body.py, as migration 0005 renders it) run
in plain Python in the tests, with real SQL against the real test database:

    with psycopg.connect(url, autocommit=True) as conn:
        plpy = Plpy(conn)
        generate_pool = Function(plpy, body, ["p_cluster_id"], settings={"search_path": "pg_catalog, pg_temp"})
        rows = generate_pool("20260420_Minimal_Sunny")   # one transaction, like `SELECT` in autocommit

What behaves as in PL/Python (PostgreSQL 15 to 18):
* the body is munged as PL/Python munges it (`def <name>():` and every line
  indented by a tab) and runs with the globals plpy, SD (one dict per
  Function), GD (one dict per Plpy, i.e. per session), args and one global
  per named argument; the call is one transaction, with the function's SET
  options applied locally;
* plpy.execute(query[, limit]), plpy.prepare(query, argtypes) (a server-side
  PREPARE with those types, so $1 placeholders and type resolution are the
  server's), plpy.execute(plan, args[, limit]), plan.execute(), plpy.cursor()
  and plan.cursor() with fetch(n), iteration and close(); arguments are
  converted as PL/Python does (None is NULL, lists are arrays, booleans stay
  booleans, anything else goes through str() and the type's input function);
* each execute runs in its own subtransaction (a SAVEPOINT), so a caught
  plpy.SPIError leaves the transaction usable; errors are
  plpy.spiexceptions.<Condition> (UniqueViolation...), subclasses of
  plpy.SPIError, with .sqlstate;
* results are lists of dict rows with nrows(), status(), colnames(),
  coltypes() and coltypmods(); json, jsonb, date, time, timestamp, interval
  and uuid values are text, numeric is Decimal, arrays are lists;
* plpy.error()/fatal() raise plpy.Error/plpy.Fatal (detail, hint, sqlstate...);
  debug/log/info/notice/warning are recorded in plpy.messages as
  (level, message, keywords); quote_literal/quote_nullable/quote_ident;
  plpy.subtransaction().

Stricter than PL/Python: argument type `unknown` is refused (SPI keeps such a
parameter unknown and fails wherever it must be coerced; SQL PREPARE would
quietly infer it), and so is a $n beyond the declared types.
Not modelled: cursors are read ahead (PL/Python's fetch lazily), results of
composite and range types, and the conversion of the function's return value
to its SQL type (callers get the Python value the body returned).
"""

from __future__ import annotations

import builtins
import itertools
from typing import Any, Iterable, Iterator, Sequence

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader

__all__ = ["Plpy", "Function", "Plan", "Result", "Cursor", "Error", "Fatal", "SPIError", "munge"]

#: Types PL/Python hands over as text (without a TRANSFORM), which psycopg would parse.
TEXT_TYPES = ("json", "jsonb", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid")
#: SPI_OK_* result codes by command tag.
SPI_STATUS = {"SELECT": 5, "INSERT": 7, "DELETE": 8, "UPDATE": 9, "MERGE": 18}
SPI_STATUS_RETURNING = {"INSERT": 11, "DELETE": 12, "UPDATE": 13}
SPI_OK_UTILITY = 4


class Error(Exception):
    """plpy.Error: what plpy.error() raises; the function ends with an ERROR."""

    def __init__(
        self, *args: Any, detail: str | None = None, hint: str | None = None, sqlstate: str | None = None, **fields: Any
    ):
        super().__init__(*args)
        self.detail, self.hint, self.sqlstate, self.fields = detail, hint, sqlstate, fields


class Fatal(Error):
    """plpy.Fatal: what plpy.fatal() raises."""


class SPIError(Exception):
    """plpy.SPIError: a database error raised by plpy.execute and friends."""

    sqlstate: str | None = None

    def __init__(self, message: str, sqlstate: str | None = None, detail: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.sqlstate, self.detail, self.hint = sqlstate, detail, hint
        self.spidata = (sqlstate, detail, hint)


class _SpiExceptions:
    """plpy.spiexceptions: one SPIError subclass per condition name (UniqueViolation...)."""

    def __init__(self) -> None:
        self._classes: dict[str, type[SPIError]] = {}

    def __getattr__(self, name: str) -> type[SPIError]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._classes:
            self._classes[name] = type(name, (SPIError,), {"__module__": "plpy.spiexceptions"})
        return self._classes[name]

    def from_psycopg(self, exc: psycopg.Error) -> SPIError:
        diag = exc.diag
        sqlstate = diag.sqlstate
        cls = getattr(self, type(exc).__name__) if sqlstate else SPIError
        return cls(diag.message_primary or str(exc), sqlstate, diag.message_detail, diag.message_hint)


class Result(list):
    """A PLyResult: the rows (dicts) plus what SPI reports about the command."""

    def __init__(
        self, rows: Iterable[dict], nrows: int, status: int, columns: Sequence[tuple[str, int, int]] | None
    ) -> None:
        super().__init__(rows)
        self._nrows, self._status, self._columns = nrows, status, columns

    def nrows(self) -> int:
        return self._nrows

    def status(self) -> int:
        return self._status

    def _described(self) -> Sequence[tuple[str, int, int]]:
        if self._columns is None:
            raise TypeError("command did not produce a result set")
        return self._columns

    def colnames(self) -> list[str]:
        return [name for name, _, _ in self._described()]

    def coltypes(self) -> list[int]:
        return [oid for _, oid, _ in self._described()]

    def coltypmods(self) -> list[int]:
        return [typmod for _, _, typmod in self._described()]


class Cursor:
    """A plpy cursor (rows are read ahead, not fetched lazily)."""

    def __init__(self, result: Result) -> None:
        self._rows: Iterator[dict] = iter(result)
        self._result = result
        self.closed = False

    def fetch(self, count: int) -> Result:
        if self.closed:
            raise ValueError("fetch from a closed cursor")
        rows = list(itertools.islice(self._rows, max(0, count)))
        return Result(rows, len(rows), SPI_STATUS["SELECT"], self._result._columns)

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> dict:
        if self.closed:
            raise StopIteration
        return next(self._rows)

    def close(self) -> None:
        self.closed = True


class Plan:
    """A prepared statement (SQL PREPARE with the declared argument types)."""

    def __init__(self, plpy: "Plpy", query: str, argtypes: Sequence[str]) -> None:
        self._plpy, self.query, self.name = plpy, query, f"plpy_plan_{next(plpy._plan_numbers)}"
        self.argtypes = [plpy._canonical_type(t) for t in argtypes]
        if "unknown" in self.argtypes:
            # SQL PREPARE infers an `unknown` parameter's type from the query; SPI_prepare keeps it
            # unknown and then fails to coerce it ("failed to find conversion function from unknown").
            raise SPIError(
                "the stand-in refuses argument type unknown: PL/Python cannot coerce it; "
                "declare the parameter's real type",
                "XX000",
            )
        types = sql.SQL(", ").join(sql.SQL(t) for t in self.argtypes)
        statement = (
            sql.SQL("PREPARE {} ({}) AS ").format(sql.Identifier(self.name), types)
            if self.argtypes
            else sql.SQL("PREPARE {} AS ").format(sql.Identifier(self.name))
        )
        plpy._run(statement.as_string(plpy.conn) + query)
        # SQL PREPARE also infers parameters beyond the declared ones; SPI_prepare does not.
        inferred = plpy._run_raw(
            "SELECT cardinality(parameter_types) AS n FROM pg_catalog.pg_prepared_statements WHERE name = %s",
            (self.name,),
        )["n"]
        if inferred != len(self.argtypes):
            plpy._run(sql.SQL("DEALLOCATE {}").format(sql.Identifier(self.name)))
            raise plpy.spiexceptions.UndefinedParameter(f"there is no parameter ${len(self.argtypes) + 1}", "42P02")

    def execute(self, args: Sequence[Any] | None = None, limit: int = 0) -> Result:
        return self._plpy.execute(self, args, limit)

    def cursor(self, args: Sequence[Any] | None = None) -> Cursor:
        return self._plpy.cursor(self, args)

    def status(self) -> bool:
        return True

    def _statement(self, args: Sequence[Any] | None) -> tuple[sql.Composed, None]:
        args = list(args or ())
        if len(args) != len(self.argtypes):
            raise TypeError(f"Expected sequence of {len(self.argtypes)} arguments, got {len(args)}: {args!r}")
        # EXECUTE is a utility statement: its parameters must be literals, not bound values.  Each
        # reaches its declared type through that type's input function, as in PL/Python.
        items = [
            sql.SQL("CAST({} AS {})").format(sql.Literal(_argument(value, kind)), sql.SQL(kind))
            for value, kind in zip(args, self.argtypes)
        ]
        statement = sql.SQL("EXECUTE {}").format(sql.Identifier(self.name))
        if items:
            statement = sql.SQL("{} ({})").format(statement, sql.SQL(", ").join(items))
        return statement, None


class Plpy:
    """The `plpy` module, for one session (connection); GD lives here."""

    Error, Fatal, SPIError = Error, Fatal, SPIError

    def __init__(self, conn: psycopg.Connection) -> None:
        if not conn.autocommit:
            raise ValueError("Plpy needs an autocommit connection (each Function call is one transaction)")
        self.conn = conn
        conn.row_factory = dict_row
        for name in TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        self.GD: dict[str, Any] = {}
        self.messages: list[tuple[str, str, dict[str, Any]]] = []
        self.spiexceptions = _SpiExceptions()
        self._plan_numbers = itertools.count(1)

    # -- SPI -------------------------------------------------------------------------
    def prepare(self, query: str, argtypes: Sequence[str] | None = None) -> Plan:
        return Plan(self, query, argtypes or [])

    def execute(self, query: str | Plan, args: Sequence[Any] | int | None = None, limit: int = 0) -> Result:
        if isinstance(query, Plan):
            statement, params = query._statement(args)  # type: ignore[arg-type]
            return self._run(statement, params, limit)
        if isinstance(args, int):
            limit, args = args, None
        if args:
            raise TypeError("plpy.execute(query) takes no arguments; prepare a plan for them")
        return self._run(query, None, limit)

    def cursor(self, query: str | Plan, args: Sequence[Any] | None = None) -> Cursor:
        return Cursor(self.execute(query, args) if isinstance(query, Plan) else self.execute(query))

    def subtransaction(self):
        """A savepoint: `with plpy.subtransaction(): ...` rolls back its block on an exception."""
        return self.conn.transaction()

    # -- messages --------------------------------------------------------------------
    def debug(self, *args: Any, **kw: Any) -> None:
        self._message("DEBUG", args, kw)

    def log(self, *args: Any, **kw: Any) -> None:
        self._message("LOG", args, kw)

    def info(self, *args: Any, **kw: Any) -> None:
        self._message("INFO", args, kw)

    def notice(self, *args: Any, **kw: Any) -> None:
        self._message("NOTICE", args, kw)

    def warning(self, *args: Any, **kw: Any) -> None:
        self._message("WARNING", args, kw)

    def error(self, *args: Any, **kw: Any) -> None:
        raise Error(_text(args), **kw)

    def fatal(self, *args: Any, **kw: Any) -> None:
        raise Fatal(_text(args), **kw)

    def _message(self, level: str, args: tuple, kw: dict[str, Any]) -> None:
        self.messages.append((level, _text(args), kw))

    # -- quoting ---------------------------------------------------------------------
    def quote_literal(self, value: str) -> str:
        return self.conn.execute("SELECT pg_catalog.quote_literal(%s::text) AS q", (value,)).fetchone()["q"]

    def quote_nullable(self, value: str | None) -> str:
        return self.conn.execute("SELECT pg_catalog.quote_nullable(%s::text) AS q", (value,)).fetchone()["q"]

    def quote_ident(self, value: str) -> str:
        return self.conn.execute("SELECT pg_catalog.quote_ident(%s::text) AS q", (value,)).fetchone()["q"]

    # -- internals -------------------------------------------------------------------
    def _canonical_type(self, name: str) -> str:
        try:
            return self._run_raw("SELECT pg_catalog.format_type(%s::regtype, NULL) AS t", (name,))["t"]
        except psycopg.Error as exc:
            raise self.spiexceptions.from_psycopg(exc) from None

    def _run_raw(self, query: str, params: Sequence[Any]) -> dict:
        with self.conn.transaction():
            return self.conn.execute(query, params).fetchone()

    def _run(self, query: str | sql.Composable, params: Sequence[Any] | None = None, limit: int = 0) -> Result:
        try:
            with self.conn.transaction():  # a savepoint inside the function's transaction
                cur = self.conn.execute(query, params)
                described = None
                if cur.description is not None and cur.pgresult is not None:
                    described = [(c.name, c.type_code, cur.pgresult.fmod(i)) for i, c in enumerate(cur.description)]
                rows = (cur.fetchmany(limit) if limit > 0 else cur.fetchall()) if described is not None else []
                tag = (cur.statusmessage or "").split(" ")[0]
        except psycopg.Error as exc:
            raise self.spiexceptions.from_psycopg(exc) from None
        if described is not None and tag in SPI_STATUS_RETURNING:
            status = SPI_STATUS_RETURNING[tag]
        else:
            status = SPI_STATUS.get(tag, SPI_OK_UTILITY)
        nrows = len(rows) if described is not None else max(cur.rowcount, 0)
        return Result(rows, nrows, status, described)


def _text(args: tuple) -> str:
    return str(args[0]) if len(args) == 1 else str(args)


def _argument(value: Any, sql_type: str) -> Any:
    """A Python argument as PL/Python passes it to a plan parameter of sql_type."""
    if value is None:
        return None
    if sql_type == "boolean":
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [None if v is None else str(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value)


def munge(name: str, source: str) -> str:
    """The Python source PL/Python compiles for a function body (PLy_procedure_munge_source)."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    return f"def {name}():\n\t" + text.replace("\n", "\n\t") + "\n\n"


class Function:
    """A PL/Python function: its munged body, its SD, and calls as transactions."""

    def __init__(
        self,
        plpy: Plpy,
        body: str,
        argnames: Sequence[str] = (),
        *,
        name: str = "standin",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.plpy, self.argnames, self.settings = plpy, list(argnames), dict(settings or {})
        self.procedure = f"__plpython_procedure_{name}"
        self.code = compile(munge(self.procedure, body), f"<PL/Python function {name!r}>", "exec")
        self.SD: dict[str, Any] = {}

    def __call__(self, *args: Any) -> Any:
        if len(args) != len(self.argnames):
            raise TypeError(f"{self.procedure} takes {len(self.argnames)} arguments, got {len(args)}")
        scope: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": "__main__",
            "plpy": self.plpy,
            "SD": self.SD,
            "GD": self.plpy.GD,
            "args": list(args),
        }
        scope.update(zip(self.argnames, args))
        exec(self.code, scope)
        with self.plpy.conn.transaction():
            for setting, value in self.settings.items():
                self.plpy.conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (setting, value))
            return scope[self.procedure]()
