"""Human-readable summaries printed by `ootd demo` and `ootd summary`."""

from __future__ import annotations

from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from db.connect import all_rows, one


def print_population(conn: psycopg.Connection, console: Console | None = None) -> None:
    console = console or Console()
    totals = one(conn, "population_totals")
    if not totals["users"]:
        console.print("no users yet: run `ootd seed --users 10000`")
        return
    overview = Table(title="Users", show_header=False, title_justify="left")
    overview.add_row("users", f"{totals['users']:,}")
    overview.add_row("cities / time zones", f"{totals['cities']} / {totals['timezones']}")
    overview.add_row("with category vetoes", _pct(totals["with_vetoes"], totals["users"]))
    overview.add_row("  ... also vetoing colors", _pct(totals["with_color_vetoes"], totals["users"]))
    overview.add_row("vetoing every category", _pct(totals["veto_all"], totals["users"]))
    overview.add_row("without an archetype", _pct(totals["no_archetype"], totals["users"]))
    overview.add_row("with a taste vector", _pct(totals["with_taste"], totals["users"]))
    console.print(overview)

    archetypes = Table(title="Archetypes", title_justify="left")
    archetypes.add_column("archetype")
    archetypes.add_column("users", justify="right")
    archetypes.add_column("share", justify="right")
    archetypes.add_column("top preferred colors")
    for row in all_rows(conn, "population_by_archetype"):
        archetypes.add_row(
            row["archetype"],
            f"{row['users']:,}",
            f"{100.0 * row['users'] / totals['users']:.1f}%",
            ", ".join(row["top_colors"]),
        )
    console.print(archetypes)

    cities = Table(title="Largest cities", title_justify="left")
    for column in ("city", "time zone", "UTC offset now"):
        cities.add_column(column)
    cities.add_column("users", justify="right")
    for row in all_rows(conn, "population_top_cities", (8,)):
        cities.add_row(row["city"], row["timezone"], row["utc_offset"], f"{row['users']:,}")
    console.print(cities)


def _pct(part: int, whole: int) -> str:
    return f"{part:,} ({100.0 * part / whole:.1f}%)" if whole else "0"


class NightlyProgress:
    """A progress bar over clusters, fed by run_nightly's progress events."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> "NightlyProgress":
        return self  # the bar starts with the run: an error before it leaves stderr one line

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:  # stopping a bar that never started would still print a blank line
            self.progress.stop()

    def __call__(self, event: str, value: Any) -> None:
        if event == "waiting":
            self.console.print(value)
        elif event == "start":
            self.progress.start()
            self.task = self.progress.add_task("clusters", total=value)
        elif event == "cluster" and self.task is not None:
            mark = "" if value.status == "stored" else " [red]failed[/red]"
            self.progress.update(self.task, advance=1, description=f"{value.cluster.cluster_id}{mark}")
        elif event == "serving" and self.task is not None:
            self.progress.update(self.task, description="writing every user's served feed")


def print_nightly(report: Any, console: Console | None = None) -> None:
    console = console or Console()
    cost = report.cost or {}
    table = Table(title=f"Nightly {report.day} ({report.llm}: {report.model})", show_header=False, title_justify="left")
    table.add_row("users (clustered)", f"{report.users:,} ({report.clustered_users:,})")
    table.add_row("clusters K", f"{report.clusters} ({report.skipped} already done, {report.stored} generated now)")
    table.add_row("LLM calls this run", f"{report.chat_requests} chat, {report.embedding_requests} embedding")
    failed = "; ".join(f"{c} ({e})" for c, e in report.failed)
    table.add_row("failed clusters", f"{len(report.failed)}: {failed}" if failed else "0")
    table.add_row("failed or unfinished LLM requests", _failed_requests(cost))
    table.add_row(
        "tokens this run",
        f"{report.prompt_tokens:,} prompt + {report.completion_tokens:,} completion"
        + (" (estimated)" if report.llm == "offline" else ""),
    )
    table.add_row("cached outfits", f"{report.cached_outfits:,}")
    if report.served is not None:
        table.add_row("served feeds (computed ahead)", describe_feeds(report.served))
    if cost:
        table.add_row(
            "est. cost today",
            f"${cost['est_cost_usd']:,.4f} (at reference prices ${cost['cost_at_reference_usd']:,.4f})",
        )
        table.add_row(
            "naive: one call per user",
            f"{cost['naive_calls']:,} calls, ${cost['naive_cost_usd'] or 0:,.2f} "
            f"(at reference prices ${cost['naive_cost_at_reference_usd'] or 0:,.2f})",
        )
    table.add_row("wall time", f"{report.seconds:.1f} s")
    console.print(table)


def describe_feeds(report: Any) -> str:
    """A FeedsReport in a line: users with a served feed, current rows, stale ones (ranked live)."""
    took = f" in {report.seconds:.1f} s" if report.seconds else ""
    return (
        f"{report.users:,} users, {report.current_rows:,} rows current, {report.stale_rows:,} stale "
        f"(ranked live until `ootd feeds refresh`){took}"
    )


def _failed_requests(cost: dict[str, Any]) -> str:
    """The day's ledger rows (ootd.llm_calls) whose status is not 'ok', out of all of them.

    A failed request is not a failed cluster: a 429 or 500 that a retry
    fixed, or an invalid answer that the second attempt fixed, still counts.
    """
    failed = cost.get("failed_calls") or 0
    total = (cost.get("chat_calls") or 0) + (cost.get("embedding_calls") or 0)
    return f"{failed:,} of {total:,} today (ledger: ootd.llm_calls, status other than 'ok')"


def print_feeds(conn: psycopg.Connection, day: Any = None, console: Console | None = None) -> None:
    """A few users' feeds at 09:00 and 19:00 their local time on `day` (default: today, UTC).

    Each feed's heading is one line that is never wrapped (`feed_heading`), so
    what the demo says can be read back whatever the terminal's width; the
    table under it may wrap its cells.
    """
    from datetime import datetime, time, timezone
    from zoneinfo import ZoneInfo

    console = console or Console()
    day = day or datetime.now(timezone.utc).date()
    for user in all_rows(conn, "demo_users"):
        for hour in (9, 19):
            at = datetime.combine(day, time(hour), tzinfo=ZoneInfo(user["timezone"]))
            rows = all_rows(conn, "feed", (user["id"], at, 3))
            if not rows:
                continue
            console.print()
            console.print(feed_heading(user, at, rows[0]["headline"]), soft_wrap=True, markup=False, highlight=False)
            table = Table(show_header=True)
            for column in ("#", "outfit", "category", "color", "daypart", "score"):
                table.add_column(column)
            for r in rows:
                table.add_row(str(r["rank"]), r["title"], r["category"], r["color"], r["daypart"], f"{r['score']:.3f}")
            if rows[0]["relaxed_rules"]:
                table.caption = "relaxed: " + ", ".join(rows[0]["relaxed_rules"])
            console.print(table)


def feed_heading(user: dict[str, Any], at: Any, headline: str) -> str:
    """`user 7 in Sydney, 19:00 local (Australia/Sydney): <headline>`: one line of the demo per feed."""
    return f"user {user['id']} in {user['city']}, {at:%H:%M} local ({user['timezone']}): {headline}"
