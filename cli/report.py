"""Human-readable summaries printed by `ootd demo` and `ootd summary`."""

from __future__ import annotations

import psycopg
from rich.console import Console
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
        archetypes.add_row(row["archetype"], f"{row['users']:,}", f"{100.0 * row['users'] / totals['users']:.1f}%",
                           ", ".join(row["top_colors"]))
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
