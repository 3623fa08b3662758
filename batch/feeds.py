"""Served feeds: every user's ranked feed computed ahead (db/sql/06_serving_ahead.sql).

Thin over `CALL ootd.refresh_feeds(at, day, part, parts)`: the users are split by id into `jobs`
parts, each refreshed by its own session (the ranking is the server's work: threads are enough), each
committing as it goes.  The nightly runs it after the day's pools; `ootd feeds refresh` after a change
of the global inputs (weights, experiments, vocabulary), which leaves every served row stale: until the
refresh, feeds are ranked live (correct, slower), never served stale.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

from db.connect import connect, one, run


@dataclass
class FeedsReport:
    users: int  # users with a served row
    current_rows: int  # rows served by ootd.feed (inputs version current)
    stale_rows: int  # rows ranked live instead until the next refresh
    version: int  # ootd.serving_inputs.version
    seconds: float = 0.0


def serves_ahead(url: str | None) -> bool:
    """Whether the schema has served feeds (revision 0020 on): a database behind it ranks every feed live."""
    with connect(url, autocommit=True) as conn:
        return one(conn, "served_feeds_present")["present"]


def feeds_status(url: str | None) -> FeedsReport:
    with connect(url, autocommit=True) as conn:
        row = one(conn, "served_feeds_status")
    return FeedsReport(row["users"], row["current_rows"], row["stale_rows"], row["version"])


def refresh_feeds(url: str | None, at: datetime | None = None, day: date | None = None, jobs: int = 2) -> FeedsReport:
    """Write every user's served feed for their local date at `at` (default: now) and for `day`."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    started = time.perf_counter()

    def part(index: int) -> None:
        with connect(url, autocommit=True) as conn:  # a procedure that commits needs no transaction block
            run(conn, "refresh_feeds", {"at": at, "day": day, "part": index, "parts": jobs})

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(part, index) for index in range(jobs)]:
            future.result()
    report = feeds_status(url)
    report.seconds = time.perf_counter() - started
    return report
