"""`ootd experiment`: A/B variants of the scoring weights, thin over db/sql/07_experiments.sql.

The database validates, assigns users to variants, logs every change
(ootd.experiment_changes) and computes the results; this module calls one
named query per command and prints what it returns.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

import psycopg
from rich.console import Console
from rich.table import Table

from db.connect import all_rows, one


# ----------------------------------------------------------------- calls --
def start(conn: psycopg.Connection, name: str, variants: str, control: str = "control") -> list[dict]:
    """ootd.start_experiment: `variants` is the JSON text {"name": {"share": s, "weights": {...}}}."""
    return all_rows(conn, "start_experiment", {"name": name, "variants": variants, "control": control})


def set_shares(conn: psycopg.Connection, name: str, shares: str) -> list[dict]:
    """ootd.set_experiment_shares: `shares` is the JSON text {"variant": share}."""
    return all_rows(conn, "set_experiment_shares", {"name": name, "shares": shares})


def end(conn: psycopg.Connection, name: str) -> dict:
    """ootd.end_experiment: the experiment's row, ended."""
    return one(conn, "end_experiment", {"name": name})


def experiments(conn: psycopg.Connection) -> list[dict]:
    """Every experiment, the oldest first, with its variants."""
    return all_rows(conn, "experiment_list")


def results(conn: psycopg.Connection, name: str | None = None, min_days: str | None = None) -> list[dict]:
    """One experiment's rows of ootd.experiment_results (None: the running one, else the latest);
    empty when there is no such experiment.  `min_days`: the minimum exposure for rates, for this
    transaction (None: the setting ootd.experiment_min_days, else 1 day; the database checks it)."""
    if min_days is not None:
        one(conn, "experiment_min_days", {"days": min_days})
    return all_rows(conn, "experiment_results", {"name": name})


# -------------------------------------------------------------- printing --
def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M %Z").strip()


def share_text(value: Any) -> str:
    """0.5 -> "50%", 0.3333 -> "33.33%"."""
    return f"{100.0 * float(value):.4g}%"


def weights_text(weights: dict) -> str:
    """The weights a variant replaces, or "the weights in force"."""
    return ", ".join(f"{k} {json.dumps(v)}" for k, v in sorted(weights.items())) or "the weights in force"


def _variant(row: dict) -> str:
    return f"{row['variant']} (control)" if row["control"] else row["variant"]


def print_allocation(title: str, rows: list[dict], console: Console | None = None) -> None:
    """An experiment's variants (as start and shares return them), in bucket order."""
    console = console or Console()
    table = Table(title=title, title_justify="left")
    for column, justify in (("variant", "left"), ("share", "right"), ("weights", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(_variant(row), share_text(row["share"]), weights_text(row["weights"]))
    console.print(table)


def print_list(rows: list[dict], console: Console | None = None) -> None:
    """Every experiment: state, start, end and variants (one a line: share and weights)."""
    console = console or Console()
    if not rows:
        console.print("no experiment has been started (ootd experiment start NAME VARIANTS_JSON)")
        return
    table = Table(title="Experiments", title_justify="left")
    for column in ("experiment", "state", "started", "ended", "variants"):
        table.add_column(column)
    for row in rows:
        variants = "\n".join(
            f"{_variant(v)} {share_text(v['share'])}" + (f": {weights_text(v['weights'])}" if v["weights"] else "")
            for v in row["variants"]
        )
        state = "running" if row["ended_at"] is None else "ended"
        table.add_row(row["name"], state, _when(row["started_at"]), _when(row["ended_at"]), variants)
    console.print(table)


def _number(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, fmt)


def _ci(low: float | None, high: float | None, fmt: str, scale: float = 1.0) -> str:
    if low is None or high is None:
        return "-"
    return f"[{format(low * scale, '+' + fmt)}, {format(high * scale, '+' + fmt)}]"


# ootd.experiment_results as rows of a table with a column per variant: (label, cell of a row).
RESULT_ROWS: list[tuple[str, Callable[[dict], str]]] = [
    ("share", lambda r: share_text(r["share"])),
    ("users", lambda r: f"{r['users']:,}"),
    ("likes", lambda r: f"{r['likes']:,}"),
    ("likes / user / day", lambda r: _number(r["likes_per_user_day"], ".4f")),
    ("  diff vs control", lambda r: _number(r["diff_likes_per_user_day"], "+.4f")),
    ("  95% CI", lambda r: _ci(r["diff_ci95_low"], r["diff_ci95_high"], ".4f")),
    ("users who liked", lambda r: f"{r['users_liking']:,}"),
    ("share who liked", lambda r: _number(r["liking_share"], ".2%")),
    ("  diff vs control, points", lambda r: _number(r["diff_liking_share"], "+.2f", 100.0)),
    ("  95% CI", lambda r: _ci(r["liking_ci95_low"], r["liking_ci95_high"], ".2f", 100.0)),
]


#: The rows shown below the minimum exposure: counts only.
COUNT_ROWS = ("share", "users", "likes", "users who liked")


def _days(value: float) -> str:
    """0.0003 days -> "26 seconds" (1 -> "1 second"); 0.5 -> "12.0 hours"; 3.25 -> "3.25 days"."""
    if value < 1 / 24:
        seconds = round(value * 86400)
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    if value < 1:
        return f"{value * 24:.1f} hours"
    return f"{value:.2f} days"


def print_results(rows: list[dict], console: Console | None = None) -> None:
    """One experiment's ootd.experiment_results rows: a column per variant, the control first.  Below the
    minimum exposure (`meaningful` false) only the counts, and a line saying when rates will mean something."""
    console = console or Console()
    first = rows[0]
    state = "running" if first["running"] else "ended"
    table = Table(
        title=f"Experiment {first['experiment']} ({state}): likes from {_when(first['since'])} "
        f"to {_when(first['until'])} ({_days(first['days'])})",
        title_justify="left",
    )
    table.add_column("")
    for row in rows:
        table.add_column(_variant(row), justify="right")
    meaningful = first["meaningful"]
    for label, cell in RESULT_ROWS:
        if meaningful or label in COUNT_ROWS:
            table.add_row(label, *[cell(row) for row in rows])
    if meaningful:
        table.caption = (
            "ootd.experiment_results: the allocation period runs from the start or the last change of shares; "
            "95% CIs: Welch normal for likes per user per day, two-proportion z for the share who liked"
        )
    console.print(table)
    if not meaningful:  # a line of its own: a caption would wrap to the narrow table's width
        console.print(
            f"counts only: rates and differences are not yet meaningful after {_days(first['days'])} of "
            f"exposure; they are shown from {_days(first['min_days'])} (ootd.experiment_min_days; "
            "--min-days DAYS)"
        )
