"""The API's one connector: a psycopg_pool pool whose connections act as `ootd_api`.

Each pooled connection runs the named query `api_set_role` (`SET ROLE
ootd_api`) once, when the pool opens it, so every request runs with the
least-privileged role: it can execute ootd.feed, ootd.like, ootd.unlike and
ootd.serving_status and read no table.  `DATABASE_URL`'s user must be a
member of `ootd_api` (a superuser is, on the embedded server).

Views call the methods below, never a cursor.  Database errors become
`ApiError`s by SQLSTATE here, in one table, so the HTTP status of every
database outcome is decided in one place.
"""

from __future__ import annotations

import logging
import weakref
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from api.errors import ApiError
from db.connect import DatabaseError
from db.queries import query

log = logging.getLogger("ootd.api")

#: SQLSTATE -> (HTTP status, error code).  Anything not listed is a bug: 500.
SQLSTATE_HTTP: dict[str, tuple[int, str]] = {
    "P0002": (404, "not_found"),  # no_data_found: unknown user (ootd.feed)
    "23503": (404, "not_found"),  # foreign_key_violation: unknown user or outfit (like/unlike)
    "22023": (400, "invalid_parameter"),  # invalid_parameter_value: limit outside 1..20
    "22P02": (400, "invalid_parameter"),  # invalid_text_representation
    "22003": (400, "invalid_parameter"),  # numeric_value_out_of_range
    "22007": (400, "invalid_parameter"),  # invalid_datetime_format
    "22008": (400, "invalid_parameter"),  # datetime_field_overflow
    "25006": (503, "read_only"),  # read_only_sql_transaction: a like on a hot standby
    "40001": (503, "retry"),  # serialization_failure: transient
    "40P01": (503, "retry"),  # deadlock_detected: transient
    "53300": (503, "database_unavailable"),  # too_many_connections
    "57014": (503, "timeout"),  # query_canceled (statement_timeout)
    "57P01": (503, "database_unavailable"),  # admin_shutdown
    "57P02": (503, "database_unavailable"),  # crash_shutdown
    "57P03": (503, "database_unavailable"),  # cannot_connect_now
}

#: The columns of ootd.feed, in order (the SQL contract).
FEED_COLUMNS = (
    "rank",
    "outfit_id",
    "title",
    "category",
    "color",
    "daypart",
    "score",
    "headline",
    "cluster_id",
    "relaxed_rules",
    "variant",
)
SERVING_STATUS_COLUMNS = (
    "pool_date",
    "pools",
    "cached_pools",
    "fallback_pools",
    "ready",
    "standby",
    "replay_lag_s",
    "unreachable_nodes",
)
REPLICA_STATUS_COLUMNS = ("standby", "replay_lsn", "replay_lag_s")

#: Connection settings for every pooled connection.
CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,  # one statement per request: no BEGIN/COMMIT round trips
    "row_factory": tuple_row,  # a feed is built from positions: cheaper than dicts, per request
    "application_name": "ootd-api",
    "options": "-c statement_timeout=5000",
}


#: The simulator's calls (api/simulator.py): ootd.simulate reports a bad profile, weight or limit as 22023
#: (400 above) and an unknown pool as P0002 (404); a function or grant the database lacks means it was not
#: migrated to this version yet: 503, saying what to run, rather than a 500.
SIMULATOR_SQLSTATE_HTTP: dict[str, tuple[int, str]] = {
    "42883": (503, "not_migrated"),  # undefined_function
    "42501": (503, "not_migrated"),  # insufficient_privilege: the grants of an older schema
}


#: What a client is told of a server-side database error (the details go to the log, never to the client).
SERVER_SIDE_MESSAGES: dict[str, str] = {
    "retry": "a concurrent change conflicted: retry",
    "timeout": "the database did not answer in time",
    "database_unavailable": "database unavailable",
}


#: The client-input data errors of a stored user's feed: the client sends only an id, an instant and a limit,
#: each checked before the call (api/routes.py), and ootd.feed's own 22023 names a bad limit.  Any other data
#: exception (class 22: 22003 "value out of range: overflow", 22P02...) comes from what is stored, a profile or
#: the weights an experiment serves: the server's fault (500, logged), never the client's (see `stored`).
FEED_CLIENT_SQLSTATES = frozenset({"22023"})


def http_error(
    exc: DatabaseError, overrides: dict[str, tuple[int, str]] | None = None, stored: str | None = None
) -> ApiError:
    """The ApiError for a database error (its message is the function's own, e.g. 'unknown user 42').

    `stored` names what the statement computed from stored data only (e.g. "user 89's feed"): a data exception
    other than FEED_CLIENT_SQLSTATES is then a 500 with a log line naming it and the database's message.
    """
    if stored is not None and exc.sqlstate.startswith("22") and exc.sqlstate not in FEED_CLIENT_SQLSTATES:
        log.error("data error computing %s (SQLSTATE %s): %s", stored, exc.sqlstate, exc.message)
        return ApiError(500, "internal", f"internal error computing {stored}")
    status, code = (overrides or {}).get(exc.sqlstate) or SQLSTATE_HTTP.get(exc.sqlstate, (None, None))
    if status is None:
        if exc.sqlstate.startswith("08"):
            status, code = 503, "database_unavailable"
        elif exc.sqlstate.startswith("22"):  # data_exception: the value a client sent
            status, code = 400, "invalid_parameter"
        else:
            log.error("unexpected database error: %s", exc)
            return ApiError(500, "internal", "internal error")
    if code == "not_migrated":
        message = f"the database lacks what the simulator needs ({exc.message}): run 'ootd migrate'"
    elif status < 500:
        message = exc.message
    else:  # the server's own trouble: its text (hosts, ports, roles of the nodes) stays in the log
        log.warning("database error answered with %s %s: %s (SQLSTATE %s)", status, code, exc.message, exc.sqlstate)
        message = SERVER_SIDE_MESSAGES.get(code, "database unavailable")
    headers = {"Retry-After": "1"} if status == 503 else None
    return ApiError(status, code, message, headers)


def _set_role(conn: psycopg.Connection) -> None:
    """Pool `configure` callback: the connection acts as ootd_api from now on."""
    conn.execute(query("api_set_role"))


class Database:
    """The pool and the four calls the API makes.

    `retry_lost=False` (a read replica's pool, api/replicas.py): a statement that meets a lost connection
    fails at once instead of checking the pool and trying again, because the caller has somewhere else
    to go (the next replica, or the primary) and must not wait for a server that is going away.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 5.0,
        retry_lost: bool = True,
        name: str = "ootd-api",
    ):
        self.timeout = timeout
        self.retry_lost = retry_lost
        # one cursor per pooled connection, reused by every request that borrows it
        # (a new psycopg cursor per request costs ~15 us of Python); gone with its connection
        self._cursors: weakref.WeakKeyDictionary[psycopg.Connection, psycopg.Cursor] = weakref.WeakKeyDictionary()
        self.pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs=dict(CONNECTION_KWARGS),
            configure=_set_role,
            name=name,
            open=True,
        )

    def close(self) -> None:
        self.pool.close()

    # ------------------------------------------------------------ the calls --
    def feed(self, user_id: int, at: datetime | None, limit: int) -> list[tuple]:
        """ootd.feed's rows as tuples, columns in FEED_COLUMNS order (a data error computing it: 500)."""
        return self._rows("api_feed", {"user_id": user_id, "at": at, "limit": limit}, stored=f"user {user_id}'s feed")

    def like(self, user_id: int, outfit_id: int) -> bool:
        return bool(self._rows("api_like", {"user_id": user_id, "outfit_id": outfit_id})[0][0])

    def unlike(self, user_id: int, outfit_id: int) -> bool:
        return bool(self._rows("api_unlike", {"user_id": user_id, "outfit_id": outfit_id})[0][0])

    def like_at_lsn(self, user_id: int, outfit_id: int) -> tuple[bool, str]:
        """`like`, plus an LSN at or past its commit record (read-your-writes on replicas: api/replicas.py)."""
        rows = self._rows("api_like", {"user_id": user_id, "outfit_id": outfit_id}, then="api_commit_lsn")
        return bool(rows[0][0]), rows[-1][0]

    def unlike_at_lsn(self, user_id: int, outfit_id: int) -> tuple[bool, str]:
        """`unlike`, plus an LSN at or past its commit record."""
        rows = self._rows("api_unlike", {"user_id": user_id, "outfit_id": outfit_id}, then="api_commit_lsn")
        return bool(rows[0][0]), rows[-1][0]

    def replay_lsn(self, timeout: float | None = None) -> str | None:
        """The WAL position this standby has replayed (None on a primary)."""
        return self._rows("api_replay_lsn", None, timeout)[0][0]

    def token_generation(self, user_id: int) -> int:
        """The user's API token generation (ootd.token_generation): a token must carry it (api/auth.py)."""
        return self._rows("api_token_generation", {"user_id": user_id})[0][0]

    def serving_status(self, timeout: float | None = None) -> dict[str, Any]:
        return dict(zip(SERVING_STATUS_COLUMNS, self._rows("api_serving_status", None, timeout)[0]))

    # ------------------------------------------------------- the simulator --
    def simulate(self, params: dict[str, Any], user_id: int | None = None) -> list[dict[str, Any]]:
        """ootd.simulate's rows as dicts, plus the instant used (`at`), the profile's city and time zone.

        A what-if call passes `params["profile"]`; a real user's call passes `user_id` instead and the
        profile (ootd.user_profile) never leaves the database.  `params`: at or (day, time), weights,
        cluster_id, limit.
        """
        profile = Jsonb(params["profile"]) if user_id is None else None
        bound = {**params, "weights": Jsonb(params["weights"]), "profile": profile, "user_id": user_id}
        return self._dicts("api_simulate", bound)

    def pool_catalog(self, pool_date: date | None) -> list[dict[str, Any]]:
        return self._dicts("api_pool_catalog", {"pool_date": pool_date})

    def llm_calls_since(self, since: datetime) -> int:
        return int(self._rows("api_llm_calls_since", {"since": since}, overrides=SIMULATOR_SQLSTATE_HTTP)[0][0])

    def simulator_catalog(self) -> dict[str, Any]:
        """What the page's controls offer: vocabulary, cities, weights (with their defaults), latest pools."""
        row = self._rows("api_simulator_catalog", None, overrides=SIMULATOR_SQLSTATE_HTTP)[0]
        return dict(zip(("vocabulary", "cities", "weights", "pools"), row))

    def _dicts(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with_names = self._rows(name, params, overrides=SIMULATOR_SQLSTATE_HTTP, names=True)
        columns, rows = with_names[0], with_names[1:]
        return [dict(zip(columns, row)) for row in rows]

    # -------------------------------------------------------------- plumbing --
    def _rows(
        self,
        name: str,
        params: dict | None,
        timeout: float | None = None,
        *,
        overrides: dict[str, tuple[int, str]] | None = None,
        names: bool = False,
        then: str | None = None,
        stored: str | None = None,
    ) -> list[tuple]:
        """The statement's rows.  Once, on a connection found closed, again on another one.

        A restart or pg_terminate_backend closes the pooled connections while they sit idle, and the pool
        only notices when one is used: without the retry, each of them cost a request its 503.  So the
        first such failure checks every idle connection (`pool.check()` discards the dead ones and opens
        replacements, each configured with SET ROLE like any new one) and runs the statement again.  Every
        call is safe to repeat: feed and serving_status read; like and unlike set a state, so a repeat
        ends in the same state (only `created`/`removed` could then describe the repeat, not the first
        attempt, if the connection died after the server had committed).

        `overrides` maps SQLSTATEs to HTTP outcomes for this call (see SIMULATOR_SQLSTATE_HTTP); with
        `names`, the first row is the tuple of column names.  `then` names a second query (no parameters)
        run on the same connection after the first has committed (autocommit); its first row is appended.
        `stored`: what the statement computes from stored data only (see `http_error`).
        """
        timeout = timeout or self.timeout
        sql = query(name)
        then_sql = query(then) if then else None
        attempts = (1, 2) if self.retry_lost else (2,)
        try:
            for attempt in attempts:
                with self.pool.connection(timeout=timeout) as conn:
                    cursor = self._cursors.get(conn)
                    if cursor is None:
                        cursor = self._cursors[conn] = conn.cursor()
                    try:
                        cursor.execute(sql, params)
                        rows = cursor.fetchall()
                        if names:
                            rows.insert(0, tuple(column.name for column in cursor.description))
                        if then_sql is not None:
                            rows.append(cursor.execute(then_sql).fetchone())
                        return rows
                    except psycopg.Error:
                        if attempt == 2 or not conn.closed:
                            raise
                log.warning("database connection lost; checking the pool's other connections and retrying once")
                self.pool.check()  # the closed one went back to the pool above, which discarded it
            raise AssertionError("unreachable")
        except PoolTimeout as exc:
            raise ApiError(
                503,
                "database_unavailable",
                f"database unavailable: no connection within {timeout:g} s",
                {"Retry-After": "1"},
            ) from exc
        except psycopg.Error as exc:
            if exc.sqlstate is None:  # lost connection, server gone: the pool discards it
                if not self.retry_lost:  # a replica: drop its other dead idle connections now, so that once
                    self._discard_dead()  # it is back, its next request gets a fresh one rather than a 503
                raise ApiError(503, "database_unavailable", "database unavailable", {"Retry-After": "1"}) from exc
            raise http_error(DatabaseError.from_psycopg(exc), overrides, stored) from exc

    def _discard_dead(self) -> None:
        """pool.check(): every idle connection is tested and the dead ones are dropped (a replica that was
        restarted left its pooled connections closed; the pool only notices one when it is used)."""
        try:
            self.pool.check()
        except Exception as exc:  # best effort: the request has already failed over
            log.warning("checking the pool of %s after a lost connection failed: %s", self.pool.name, exc)


class Probe:
    """One direct connection to a read replica, for its health check (api/replicas.py).

    Not the replica's pool: a pool asked for a connection to a server that is down waits for one
    (up to its timeout), while a check must answer "down" at once.  The connection runs
    `api_set_role` like the pool's, and is replaced after any failure.
    """

    def __init__(self, url: str, connect_timeout: int = 2):
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None

    def status(self) -> dict[str, Any]:
        """`api_replica_status` as a dict (standby, replay_lsn, replay_lag_s); DatabaseError when unreachable.

        A connection that broke since the last check (the replica restarted) is replaced and the query
        tried once more, so a restart does not read as "down" for one check interval.
        """
        for attempt in (1, 2):
            fresh = self._conn is None or self._conn.closed
            try:
                if fresh:
                    self._conn = psycopg.connect(self.url, connect_timeout=self.connect_timeout, **CONNECTION_KWARGS)
                    _set_role(self._conn)
                row = self._conn.execute(query("api_replica_status")).fetchone()
                return dict(zip(REPLICA_STATUS_COLUMNS, row))
            except psycopg.Error as exc:
                self.close()
                if fresh or attempt == 2:
                    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
                        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        raise DatabaseError("08006", f"cannot connect: {message}") from exc
                    raise DatabaseError.from_psycopg(exc) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


def check(url: str) -> None:
    """Fail fast (DatabaseError) if `url` cannot connect or cannot act as ootd_api."""
    try:
        with psycopg.connect(url, **CONNECTION_KWARGS) as conn:
            _set_role(conn)
            conn.execute(query("api_serving_status")).fetchall()
    except psycopg.OperationalError as exc:
        raise DatabaseError("08006", f"cannot connect to the database: {str(exc).strip().splitlines()[0]}") from exc
    except psycopg.Error as exc:
        raise DatabaseError.from_psycopg(exc) from exc
