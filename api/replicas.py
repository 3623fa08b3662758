"""Read replicas: `GET .../feed` on hot standbys, everything else on the primary.

`DATABASE_READ_URLS` (comma-separated DSNs) names the replicas; each gets a small pool of its own
(`replica-1`, `replica-2`, ... in that order).  A feed goes to them round-robin; likes, unlikes,
/readyz, /metrics and the simulator stay on `DATABASE_URL`.  ootd.feed is a pure read, so a
standby answers exactly what the primary answers once it has replayed the same WAL.

Why the rules are what they are:
- **Skip, never fail.**  A replica that is down (its health check cannot connect), lagging (its
  replay lag is past `OOTD_REPLICA_MAX_LAG_S`, default 10 s) or not a standby at all is passed by;
  so is one that answers a 5xx mid-request (a stop, a recovery conflict) or no rows (it has not
  replayed today's pools yet): the request goes to the next replica, and the primary answers
  when none will.  A replica can slow a request down, never make it fail.
- **Checks are cached.**  Each replica's state (a standby?, replay LSN, lag) is read by one
  query on its own connection (`connector.Probe`) at most once per `OOTD_REPLICA_CHECK_S`
  (default 1 s) per worker; the request that finds the state stale runs the check, the others
  meanwhile use the previous one.  So the request path pays about one query per second per
  replica, not one per request.  /readyz and /metrics check afresh.
- **Read-your-writes.**  With replicas configured, a like or unlike answers with the primary's
  WAL insert position right after its commit (`Ootd-Min-LSN` header and `ootd_min_lsn` cookie).
  A feed request that carries it (header, or the cookie a browser sends back) goes to a replica
  only if that replica's replay LSN is at or past it: the cached value first, else one fresh
  `pg_last_wal_replay_lsn()` on that replica; else the primary answers.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api import metrics
from api.connector import Database, Probe
from api.errors import ApiError, bad_request
from db.connect import DatabaseError

log = logging.getLogger("ootd.api")

READ_URLS_ENV = "DATABASE_READ_URLS"
MAX_LAG_ENV = "OOTD_REPLICA_MAX_LAG_S"
CHECK_ENV = "OOTD_REPLICA_CHECK_S"
DEFAULT_MAX_LAG_S = 10.0
DEFAULT_CHECK_S = 1.0
PRIMARY = "primary"

#: The request header and cookie carrying the LSN a client must see, and the response header naming
#: the database that served a feed.
MIN_LSN_HEADER = "Ootd-Min-LSN"
MIN_LSN_COOKIE = "ootd_min_lsn"
SERVED_BY_HEADER = "Ootd-Served-By"
#: pg_lsn's text form, two hexadecimal halves of at most 8 digits each (the openapi pattern too).
LSN_PATTERN = r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def parse_lsn(text: str) -> int | None:
    """An LSN as an integer (comparable), None if `text` is not pg_lsn's `X/Y` form."""
    match = _LSN.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1), 16) << 32 | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def min_lsn_from(header: str | None, cookie: str | None) -> int | None:
    """The LSN a feed request must see (the later of header and cookie); 400 `invalid_min_lsn` if either is
    malformed.  Validated whether or not replicas are configured: the API's contract does not depend on them."""
    found = None
    for where, text in ((f"the {MIN_LSN_HEADER} header", header), (f"the {MIN_LSN_COOKIE} cookie", cookie)):
        if text is None:
            continue
        value = parse_lsn(text)
        if value is None:
            raise bad_request(
                "invalid_min_lsn",
                f"{where} must be a WAL position as returned by a like (e.g. 0/1A2B3C4D), got {text[:40]!r}",
            )
        found = value if found is None else max(found, value)
    return found


@dataclass(frozen=True)
class ReplicaSettings:
    urls: tuple[str, ...]
    max_lag_s: float = DEFAULT_MAX_LAG_S
    check_s: float = DEFAULT_CHECK_S

    @property
    def cookie_max_age(self) -> int:
        """How long a like's LSN cookie lives: past the lag bound (a replica behind that is skipped anyway)."""
        return max(60, int(2 * self.max_lag_s) + 1)


def settings_from_env(environ: dict[str, str] | None = None) -> ReplicaSettings | None:
    """The replica settings from the environment; None without DATABASE_READ_URLS.  ValueError if malformed."""
    env = os.environ if environ is None else environ
    urls = tuple(url.strip() for url in (env.get(READ_URLS_ENV) or "").split(",") if url.strip())
    if not urls:
        return None
    return ReplicaSettings(
        urls,
        _positive(env, MAX_LAG_ENV, DEFAULT_MAX_LAG_S),
        _positive(env, CHECK_ENV, DEFAULT_CHECK_S),
    )


def _positive(env: Any, name: str, default: float) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class ReplicaState:
    state: str  # up, down, lagging
    lag_s: float | None
    replay_lsn: int | None
    detail: str | None
    checked_at: float  # time.monotonic()


_UNCHECKED = ReplicaState("down", None, None, "not checked yet", float("-inf"))


class Replica:
    """One read replica: its pool, its health-check connection and its cached state."""

    def __init__(self, name: str, url: str, settings: ReplicaSettings, *, pool_max: int, pool_timeout: float):
        self.name = name
        self.settings = settings
        # min_size 0: a replica that is down at start-up costs no background reconnect loop until it is used;
        # a short timeout: waiting for a connection to a replica is only ever worse than asking the primary.
        self.db = Database(
            url,
            min_size=0,
            max_size=pool_max,
            timeout=min(pool_timeout, 1.0),
            retry_lost=False,
            name=f"ootd-api-{name}",
        )
        self._probe = Probe(url)
        self._lock = threading.Lock()
        self._state = _UNCHECKED

    @property
    def state(self) -> ReplicaState:
        return self._state

    def current(self) -> ReplicaState:
        """The cached state, checked again first if older than the check interval.

        Only one thread checks at a time; the others use the previous state meanwhile (the very
        first check is waited for: there is no previous state).
        """
        state = self._state
        if time.monotonic() - state.checked_at < self.settings.check_s:
            return state
        if self._lock.acquire(blocking=state is _UNCHECKED):
            try:
                if time.monotonic() - self._state.checked_at >= self.settings.check_s:
                    self._check()
            finally:
                self._lock.release()
        return self._state

    def refresh(self) -> ReplicaState:
        """Check now (/readyz, /metrics), whatever the cache holds."""
        with self._lock:
            self._check()
        return self._state

    def _check(self) -> None:
        try:
            status = self._probe.status()
        except DatabaseError as exc:
            self._set(ReplicaState("down", None, None, f"{exc.sqlstate}: {exc.message}", time.monotonic()))
            return
        now = time.monotonic()
        if not status["standby"]:
            self._set(ReplicaState("down", None, None, "not a hot standby (pg_is_in_recovery() is false)", now))
            return
        lag = float(status["replay_lag_s"] or 0.0)
        replay = parse_lsn(status["replay_lsn"] or "")
        if lag > self.settings.max_lag_s:
            detail = f"replay lag {lag:.1f} s > {MAX_LAG_ENV} {self.settings.max_lag_s:g} s"
            self._set(ReplicaState("lagging", lag, replay, detail, now))
        else:
            self._set(ReplicaState("up", lag, replay, None, now))

    def mark_down(self, detail: str) -> None:
        """A request met an unavailable replica: skip it until the next check (one interval from now)."""
        self._set(ReplicaState("down", None, None, detail, time.monotonic()))

    def has_replayed(self, min_lsn: int) -> bool:
        """Whether this replica has replayed `min_lsn`: the cached LSN, else one fresh query."""
        cached = self._state.replay_lsn
        if cached is not None and cached >= min_lsn:
            return True
        fresh = parse_lsn(self.db.replay_lsn() or "")  # ApiError 503 if the replica is unavailable
        return fresh is not None and fresh >= min_lsn

    def _set(self, state: ReplicaState) -> None:
        previous, self._state = self._state, state
        if state.state != previous.state or previous is _UNCHECKED:
            (log.info if state.state == "up" else log.warning)(
                "read replica %s is %s%s", self.name, state.state, f": {state.detail}" if state.detail else ""
            )
        metrics.record_replica(self.name, state.state, state.lag_s)

    def close(self) -> None:
        with self._lock:
            self._probe.close()
        self.db.close()


class ReadRouter:
    """Where a feed runs: the replicas in turn, each skipped when it cannot serve this request, then the primary."""

    def __init__(self, primary: Database, settings: ReplicaSettings, *, pool_max: int = 4, pool_timeout: float = 5.0):
        self.primary = primary
        self.settings = settings
        self.replicas = [
            Replica(f"replica-{i}", url, settings, pool_max=pool_max, pool_timeout=pool_timeout)
            for i, url in enumerate(settings.urls, 1)
        ]
        self._turn = itertools.count()  # next() is atomic under the GIL
        self._routed = {name: metrics.FEEDS_ROUTED.labels(name) for name in [PRIMARY, *self.names()]}

    def names(self) -> list[str]:
        return [replica.name for replica in self.replicas]

    def feed(self, user_id: int, at: datetime | None, limit: int, min_lsn: int | None) -> tuple[list[tuple], str]:
        """ootd.feed's rows and the name of the database that answered them."""
        n = len(self.replicas)
        first = next(self._turn) % n
        for replica in self.replicas[first:] + self.replicas[:first]:
            reason = self._unusable(replica, min_lsn)
            if reason is None:
                try:
                    rows = replica.db.feed(user_id, at, limit)
                except ApiError as exc:
                    if exc.status < 500:  # a real answer (404 unknown user, 400): the primary's would be the same
                        raise
                    reason = "error"
                    if exc.code == "database_unavailable":
                        replica.mark_down(exc.message)
                else:
                    if rows:
                        self._routed[replica.name].inc()
                        return rows, replica.name
                    reason = "no_pools"  # today's pools not replayed yet: the primary may have them
            metrics.REPLICA_SKIPPED.labels(replica.name, reason).inc()
        rows = self.primary.feed(user_id, at, limit)
        self._routed[PRIMARY].inc()
        return rows, PRIMARY

    def _unusable(self, replica: Replica, min_lsn: int | None) -> str | None:
        state = replica.current()
        if state.state != "up":
            return state.state
        if min_lsn is not None:
            try:
                if not replica.has_replayed(min_lsn):
                    return "behind"
            except ApiError as exc:
                if exc.code == "database_unavailable":
                    replica.mark_down(exc.message)
                return "error"
        return None

    def status(self) -> list[dict[str, Any]]:
        """Each replica checked now: name, state, lag, the feeds it served (all workers), why it is skipped."""
        routed = metrics.feeds_routed()
        out = []
        for replica in self.replicas:
            state = replica.refresh()
            out.append(
                {
                    "name": replica.name,
                    "state": state.state,
                    "lag_s": state.lag_s,
                    "replay_lsn": None if state.replay_lsn is None else format_lsn(state.replay_lsn),
                    "feeds": routed.get(replica.name, 0),
                    "detail": state.detail,
                }
            )
        return out

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
