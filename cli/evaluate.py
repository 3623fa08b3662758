"""`ootd evaluate`: run ootd.evaluate() (or its sweep, or its per-variant form) and print what it stored.

PostgreSQL computes every metric (db/sql/08_evaluation.sql) and stores the
run in ootd.evaluations; this module only draws the progress bar from the
function's NOTICEs and prints the row (docs/evaluation.md defines each metric).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.experiment import share_text, weights_text
from db.connect import one, run

DEFAULT_TIMES = (time(9), time(15), time(21))
#: An analyst run's default statement timeout (seconds): the database bounds a run's size (at most 300,000
#: feeds, users x local times: ootd._check_evaluation), this bounds its time on a busy or large database.
#: `ootd evaluate --statement-timeout S` changes it; 0 lifts it.
DEFAULT_STATEMENT_TIMEOUT_S = 900.0

# (label, metric name without @k, "k" / "limit" / "" (a name without @k), format); "@k" rows use k = 3,
# "@limit" rows the run's limit.  A section none of whose metrics the run has is left out.
SECTIONS: list[tuple[str, list[tuple[str, str, str, str]]]] = [
    (
        "relevance",
        [
            ("NDCG@{k}: agreement with the scorer (circular)", "ndcg", "k", "ratio"),
            ("pool ceiling@{k} (best of the candidates)", "pool_ceiling", "k", "ratio"),
            ("clustering loss@{k} (1 - ceiling)", "clustering_loss", "k", "ratio"),
            ("ranking loss@{k} (ceiling - NDCG)", "ranking_loss", "k", "ratio"),
            ("NDCG@{k}: agreement with the scorer (circular)", "ndcg", "limit", "ratio"),
            ("pool ceiling@{k}", "pool_ceiling", "limit", "ratio"),
        ],
    ),
    (  # only where the run was measured against the truth (ootd_truth.evaluate_truth: the owner's runs)
        "relevance vs the hidden truth",
        [
            ("NDCG@{k} vs hidden truth", "truth_ndcg", "k", "ratio"),
            ("pool ceiling@{k} vs hidden truth", "truth_pool_ceiling", "k", "ratio"),
            ("NDCG@{k} vs hidden truth", "truth_ndcg", "limit", "ratio"),
            ("pool ceiling@{k} vs hidden truth", "truth_pool_ceiling", "limit", "ratio"),
            ("simulated users measured", "truth_users", "", "count"),
        ],
    ),
    (
        "illusion of 1:1",
        [
            ("personalization@{k} within clusters", "personalization_within_clusters", "k", "ratio"),
            ("personalization@{k} overall", "personalization", "k", "ratio"),
            ("feeds sharing their exact top-{k}", "shared_topk_share", "k", "share"),
            ("catalog coverage@{k} (served / generated)", "catalog_coverage", "k", "share"),
        ],
    ),
    (
        "intra-list diversity",
        [
            ("distinct categories in top-{k}", "distinct_categories", "k", "mean"),
            ("distinct colors in top-{k}", "distinct_colors", "k", "mean"),
            ("mean pairwise embedding distance", "embedding_distance", "k", "ratio"),
            ("top-{k}s repeating a category", "repeated_category_share", "k", "share"),
            ("top-{k}s of one color", "single_color_share", "k", "share"),
        ],
    ),
    (
        "checks",
        [
            ("headline contradictions", "headline_contradictions", "k", "count"),
            ("short feeds (pool had enough)", "short_feeds", "k", "count"),
            ("veto violations (served items)", "veto_violations", "k", "count"),
            ("feeds with relaxed rules", "relaxed_feeds", "k", "count"),
            ("relaxed rules", "relaxed_rules", "k", "count"),
            ("feeds evaluated", "feeds", "k", "count"),
        ],
    ),
]


def parse_times(text: str) -> list[time]:
    """`09:00,15:00,21:00` -> times; ValueError with the offending item."""
    times = []
    for item in text.split(","):
        try:
            times.append(time.fromisoformat(item.strip()))
        except ValueError:
            raise ValueError(f"expected local times as HH:MM[,HH:MM...], got {item.strip()!r}") from None
    if len(set(times)) != len(times):
        raise ValueError(f"local times must be distinct, got {text!r}")
    return times


class EvaluationProgress:
    """A bar over sampled users, fed by ootd.evaluate's NOTICEs (DETAIL {"done", "total"})."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("evaluating users"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: Any = None

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        try:
            step = json.loads(diag.message_detail or "")
        except ValueError:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("users", total=step["total"])
        self.progress.update(self.task, completed=step["done"])

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


def statement_timeout_ms(seconds: float) -> int:
    """Seconds (0: none) as statement_timeout's milliseconds; ValueError outside 0..1 week."""
    if not 0 <= seconds <= 7 * 86400:
        raise ValueError(f"a statement timeout is 0 (none) to 604800 seconds, got {seconds:g}")
    return 0 if seconds == 0 else max(1, round(seconds * 1000))


def timed_out(seconds: float) -> str:
    """What `ootd evaluate` says when its statement timeout cancelled the run (nothing was stored)."""
    return (
        f"the evaluation was cancelled by its statement timeout of {seconds:g} s and stored nothing: sample "
        "fewer users or local times, or raise the timeout with --statement-timeout SECONDS (0 lifts it)"
    )


def evaluate(
    conn: psycopg.Connection,
    day: date | None = None,
    users: int = 600,
    times: list[time] | None = None,
    limit: int = 5,
    progress: Callable[[psycopg.errors.Diagnostic], None] | None = None,
    sweep: bool = False,
    by_variant: bool = False,
    experiment: str | None = None,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_S,
) -> dict:
    """One ootd.evaluate() run, ootd.evaluate_sweep() with `sweep`, or ootd.evaluate_variants() of
    `experiment` (None: the running one) with `by_variant` (committed by the caller's connection);
    returns the stored row.  `statement_timeout` (seconds, 0: none) bounds the run for the rest of the
    caller's transaction."""
    if sweep and by_variant:
        raise ValueError("--sweep and --by-variant are separate runs: choose one")
    run(conn, "analyst_statement_timeout", {"ms": str(statement_timeout_ms(statement_timeout))})
    if progress is not None:
        conn.add_notice_handler(progress)
    try:
        params = {
            "date": day,
            "users": users,
            "times": list(times or DEFAULT_TIMES),
            "limit": limit,
            "progress": progress is not None,
        }
        if by_variant:
            return one(conn, "evaluate_variants", {**params, "experiment": experiment})
        if sweep:
            return one(conn, "evaluate_sweep", params)
        row = one(conn, "evaluate", params)
        return evaluate_truth(conn, row["id"]) or row
    finally:
        if progress is not None:
            conn.remove_notice_handler(progress)


def evaluate_truth(conn: psycopg.Connection, evaluation_id: int) -> dict | None:
    """A stored plain run measured against the simulated users' hidden truth (ootd_truth.evaluate_truth:
    truth_ndcg@k and truth_pool_ceiling@k merged into its metrics), or None when the connection may not
    read the truth: only the owner may, so an analyst's run stays as the circular oracle measured it.
    In a savepoint, so that refusal leaves the caller's transaction (and the run) intact."""
    try:
        with conn.transaction():
            return one(conn, "evaluate_truth", {"evaluation_id": evaluation_id})
    except psycopg.errors.InsufficientPrivilege:
        return None


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "count":
        return f"{int(value):,}"
    if fmt == "share":
        return f"{100.0 * float(value):.1f}%"
    if fmt == "mean":
        return f"{float(value):.2f}"
    return f"{float(value):.3f}"


def run_table(row: dict, what: str, headers: list[str]) -> Table:
    """An empty table for a stored run: titled `<what> of <date>: N users at <times> local, k, limit`, a
    "metric" column, then one right-aligned column per header."""
    params = row["params"]
    table = Table(
        title=f"{what} of {row['pool_date']}: {params['sampled']:,} users at "
        f"{', '.join(params['at_times'])} local, k = {min(params['k'])}, limit = {params['limit']}",
        title_justify="left",
    )
    table.add_column("metric")
    for header in headers:
        table.add_column(header, justify="right")
    return table


def add_section_rows(table: Table, ks: dict[str, int], columns: list[dict]) -> None:
    """The SECTIONS rows of a table whose columns are metrics objects (all feeds and each local time, or
    each variant): a bold row per section, then its metrics at k = ks["k"] and ks["limit"]."""
    for section, rows in SECTIONS:
        keys = [f"{name}@{ks[which]}" if which else name for _, name, which, _ in rows]
        if not any(key in m for key in keys for m in columns):  # not measured (the truth, for an analyst)
            continue
        table.add_row(f"[bold]{section}[/bold]", *[""] * len(columns))
        seen = set()
        for (label, name, which, fmt), key in zip(rows, keys):
            if key in seen:  # limit == 3: the @limit rows repeat the @3 ones
                continue
            seen.add(key)
            table.add_row("  " + label.format(k=ks.get(which)), *[_cell(m.get(key), fmt) for m in columns])


def print_evaluation(row: dict, console: Console | None = None) -> None:
    """The stored run as one table: a column for all feeds, then one per local time."""
    console = console or Console()
    params, metrics = row["params"], row["metrics"]
    ks = {"k": min(params["k"]), "limit": params["limit"]}
    scopes = [("all", metrics)] + sorted(metrics.get("by_time", {}).items())
    table = run_table(row, "Evaluation", [name for name, _ in scopes])
    add_section_rows(table, ks, [m for _, m in scopes])
    truth = (
        f"hidden truth of {metrics['truth_users']:,} simulated users ({metrics['truth_skipped_users']:,} without "
        "one skipped)"
        if "truth_users" in metrics
        else "not measured against the hidden truth (no simulated user sampled, or not the owner)"
    )
    table.caption = (
        f"stored as ootd.evaluations id {row['id']}; {metrics['generated_outfits']:,} outfits generated "
        f"on {row['pool_date']}; {truth}; definitions: docs/evaluation.md"
    )
    console.print(table)


# The sweep's rows: (label, metric name without @k, "k" or "limit", format).
SWEEP_ROWS: list[tuple[str, str, str, str]] = [
    ("K = LLM calls a night", "llm_calls", "", "count"),
    ("users per call", "users_per_call", "", "count"),
    ("NDCG@{k}: agreement with the scorer (circular)", "ndcg", "k", "ratio"),
    ("pool ceiling@{k}", "pool_ceiling", "k", "ratio"),
    ("NDCG@{k}: agreement with the scorer (circular)", "ndcg", "limit", "ratio"),
    ("personalization@{k} within clusters", "personalization_within_clusters", "k", "ratio"),
    ("personalization@{k} overall", "personalization", "k", "ratio"),
    ("feeds sharing their exact top-{k}", "shared_topk_share", "k", "share"),
    ("catalog coverage@{k}", "catalog_coverage", "k", "share"),
    ("served items of another weather", "weather_mismatch_share", "k", "share"),
    ("top-{k}s repeating a category", "repeated_category_share", "k", "share"),
    ("headline contradictions", "headline_contradictions", "k", "count"),
    ("veto violations", "veto_violations", "k", "count"),
]
SWEEP_HEADERS = {
    "archetype": "archetype",
    "archetype_weather": "x weather",
    "archetype_weather_taste": "x taste half",
    "archetype_weather_neighbours": "x weather + neighbours",
}


def print_sweep(row: dict, console: Console | None = None) -> None:
    """A stored sweep as one table: a column per clustering, coarse to fine, K (LLM calls a night) first."""
    console = console or Console()
    params, metrics = row["params"], row["metrics"]
    ks = {"k": min(params["k"]), "limit": params["limit"]}
    names = metrics["clusterings"]
    # the column served with the weights in force: with or without the neighbour draw
    served = "archetype_weather_neighbours" if params.get("weights", {}).get("neighbour_pools") else "archetype_weather"
    headers = [SWEEP_HEADERS.get(name, name) + (" (served)" if name == served else "") for name in names]
    table = run_table(row, "Clustering sweep", headers)
    seen = set()
    for label, name, which, fmt in SWEEP_ROWS:
        key = f"{name}@{ks[which]}" if which else name
        if key in seen:  # limit == 3: the @limit row repeats the @3 one
            continue
        seen.add(key)
        table.add_row(label.format(k=ks.get(which)), *[_cell(metrics[n].get(key), fmt) for n in names])
    table.caption = (
        f"stored as ootd.evaluations id {row['id']}; no LLM call made; the same 1:1 oracle in every column; "
        "the first three serve each user's own pool only; definitions: docs/evaluation.md"
    )
    console.print(table)


def variant_header(name: str, metrics: dict) -> str:
    """`control (control, 50%)`, `more_cosine (50%)`."""
    share = share_text(metrics["by_variant"][name]["share"])
    return f"{name} (control, {share})" if name == metrics["control"] else f"{name} ({share})"


def print_variants(row: dict, console: Console | None = None) -> None:
    """A stored ootd.evaluate_variants() run as one table: a column per variant, the control first
    (metrics.variants' order; each one's metrics under metrics.by_variant), the rows of the plain
    evaluation (SECTIONS)."""
    console = console or Console()
    params, metrics = row["params"], row["metrics"]
    ks = {"k": min(params["k"]), "limit": params["limit"]}
    names, by_variant = metrics["variants"], metrics["by_variant"]
    table = run_table(
        row, f"Evaluation by variant of experiment {params['experiment']}", [variant_header(n, metrics) for n in names]
    )
    table.add_row("weights replaced", *[weights_text(by_variant[n]["weights"]) for n in names])
    add_section_rows(table, ks, [by_variant[n] for n in names])
    table.caption = (
        f"stored as ootd.evaluations id {row['id']}; experiment {params['experiment']}: every sampled user "
        "measured in each variant (same users, same local times; the oracle scores with the variant's weights); "
        "no LLM call; definitions: docs/evaluation.md"
    )
    console.print(table)


# ------------------------------------------------------------------------------------------- online --
#: The online evaluation's arms in report order (docs/evaluation.md, "Online evaluation"), each with
#: its weights: the served database's with these overrides (None: the arm does not rank).
ARM_OVERRIDES: dict[str, dict | None] = {
    "upper_bound": None,
    "pool_ceiling": None,
    "served": {},
    "own_pool": {"neighbour_pools": False},
    "floor": None,
}
ONLINE_ARMS = tuple(ARM_OVERRIDES)
#: The first simulated day unless --start says otherwise: a fixed date, so a run is reproducible.
ONLINE_START = date(2026, 12, 8)
#: Scratch databases simulated at once (each arm is a chain of days of its own): the machine's cores.
ONLINE_JOBS = 2


@dataclass(frozen=True)
class Arm:
    """One arm of a run: its name in the report, the policy ootd_truth.online_day runs (`served`: the
    feed), and its weights (the served database's with `overrides`; None: the arm does not rank)."""

    name: str
    policy: str
    overrides: dict | None


def plan_arms(arms: tuple[str, ...], variants: list[dict]) -> list[Arm]:
    """The run's arms, in report order; the upper bound always.  With a running experiment
    (`variants`: its variants in bucket order, each with its weights), `served` is one arm per
    variant, `served:<variant>`, every simulated user served that variant's weights."""
    unknown = [a for a in arms if a not in ARM_OVERRIDES]
    if unknown:
        raise ValueError(f"unknown arms {', '.join(unknown)}; arms: {', '.join(ONLINE_ARMS)}")
    plan = []
    for arm in ONLINE_ARMS:
        if arm != "upper_bound" and arm not in arms:
            continue
        if arm == "served" and variants:
            plan += [Arm(f"served:{v['variant']}", "served", dict(v["weights"])) for v in variants]
        else:
            plan.append(Arm(arm, arm, ARM_OVERRIDES[arm]))
    return plan


def _conninfo(url: str, dbname: str) -> str:
    """The same DSN naming another database of its server (a URL stays a URL: Alembic needs one)."""
    if "://" not in url:
        return psycopg.conninfo.make_conninfo(url, dbname=dbname)
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname)))


def _create_database(url: str, name: str, template: str | None = None) -> None:
    """CREATE DATABASE on the server of `url` (identifiers composed by psycopg, never by string)."""
    from psycopg import sql

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _drop_database(url: str, name: str) -> None:
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def scratch_names(tag: str, arms: list[Arm]) -> dict[str, str]:
    """The scratch databases of a run: its template and one per arm (`ootd_online_<tag>_<n>`, n its
    position: a variant's name may not fit an identifier)."""
    return {"template": f"ootd_online_{tag}_template"} | {
        arm.name: f"ootd_online_{tag}_{n}" for n, arm in enumerate(arms)
    }


def _simulate_arm(
    url: str, arm: Arm, days: list[date], seed: int, step: Callable[[str, int], None] | None
) -> list[dict]:
    """An arm's chain of days in its scratch database: each day's nightly, then its day step."""
    from batch.nightly import NightlyConfig, run_nightly

    results = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for n, day in enumerate(days):
            # No served feeds: each simulated user opens the app once a day, and a served feed is the
            # live ranking's answer anyway (tests/test_served_feeds.py).
            run_nightly(url, NightlyConfig(day=day, llm="offline", force=True, serve_ahead=False))
            results.append(one(conn, "online_day", {"arm": arm.policy, "day": day, "seed": seed})["metrics"])
            if step is not None:
                step(arm.name, n + 1)
    return results


def evaluate_online(
    url: str,
    days: int,
    users: int,
    seed: int,
    start: date = ONLINE_START,
    arms: tuple[str, ...] = ONLINE_ARMS,
    step: Callable[[str, int], None] | None = None,
    tag: str | None = None,
    jobs: int = ONLINE_JOBS,
    on_plan: Callable[[list[Arm]], None] | None = None,
) -> dict:
    """Simulate `days` days of `users` seeded users in a scratch database per arm on the server of `url`
    (the served database, which only gains the stored run); returns the ootd.evaluations row.

    The arms are independent chains of days, `jobs` of them simulated at once (threads, each with its
    own connections: the work is the server's).  Every scratch database is dropped on the way out, also
    on an error or Ctrl-C.  `on_plan(arms)` is called with the arms once known, `step(arm, day)` after
    each simulated day (the progress bar)."""
    import os
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import Jsonb, all_rows, connect

    with connect(url) as conn:
        weights = one(conn, "online_served_weights")["weights"]
        variants = all_rows(conn, "online_running_variants")
    plan = plan_arms(arms, variants)
    if on_plan is not None:
        on_plan(plan)
    names = scratch_names(tag or f"{os.getpid()}_{uuid.uuid4().hex[:8]}", plan)
    created: list[str] = []
    dates = [start + timedelta(days=n) for n in range(days)]
    try:
        _create_database(url, names["template"])
        created.append(names["template"])
        template_url = _conninfo(url, names["template"])
        migrate(template_url)
        with connect(template_url) as conn:
            seed_users(conn, users, seed)
        for arm in plan:
            _create_database(url, names[arm.name], names["template"])
            created.append(names[arm.name])
            with psycopg.connect(_conninfo(url, names[arm.name]), autocommit=True) as conn:
                run(conn, "online_set_weights", {"weights": Jsonb({**weights, **(arm.overrides or {})})})
        # The longest chains first (the ranking arms call the feed), so the pool ends together.
        order = sorted(plan, key=lambda a: a.overrides is None)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {
                arm.name: pool.submit(_simulate_arm, _conninfo(url, names[arm.name]), arm, dates, seed, step)
                for arm in order
            }
            results = {arm.name: futures[arm.name].result() for arm in plan}
    finally:
        for name in reversed(created):
            _drop_database(url, name)
    params = {
        "kind": "online",
        "start": start.isoformat(),
        "days": days,
        "users": users,
        "seed": seed,
        "arms": [arm.name for arm in plan],
        "weights": weights,
        "arm_weights": {arm.name: arm.overrides for arm in plan},
        "experiment": variants[0]["experiment"] if variants else None,
        "like_model": "ootd_truth.like_probability(ootd_truth.utility): 1 / (1 + exp(-2 (utility - 2.6)))",
        "open_pattern": "55% N(08:00, 60 min), 45% N(19:30, 90 min), clipped to 06:00..23:30 local",
    }
    with connect(url) as conn:
        return one(conn, "store_online_evaluation", {"params": Jsonb(params), "arms": Jsonb(results)})


class OnlineProgress:
    """A bar over simulated arm-days (rich, on the given console)."""

    def __init__(self, console: Console, total: int | None = None):
        self.progress = Progress(
            TextColumn("simulating {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.progress.start()
        self.task = self.progress.add_task("arm-days", total=total)

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def __call__(self, arm: str, day: int) -> None:
        self.progress.update(self.task, advance=1, description=f"{arm}, day {day}")

    def stop(self) -> None:
        self.progress.stop()


def print_online(row: dict, console: Console | None = None) -> None:
    """A stored online run: a row per arm (run totals), then likes per impression by day."""
    console = console or Console()
    params, arms = row["params"], row["metrics"]["arms"]
    table = Table(
        title=f"Online evaluation from {params['start']}: {params['users']:,} simulated users x {params['days']} "
        f"days, seed {params['seed']}",
        title_justify="left",
    )
    for header in ("arm", "impressions", "likes", "likes/impression", "illusion ratio", "lift day 1 -> N", "repeats"):
        table.add_column(header, justify="left" if header == "arm" else "right")
    for arm in params["arms"]:
        m = arms[arm]
        table.add_row(
            arm,
            _cell(m["impressions"], "count"),
            _cell(m["likes"], "count"),
            _cell(m["likes_per_impression"], "ratio"),
            _cell(m["illusion_ratio"], "ratio"),
            "-" if m["lift"] is None else f"{float(m['lift']):+.3f}",
            _cell(m["repeats"], "count"),
        )
    console.print(table)
    by_day = Table(title="likes per impression by day", title_justify="left")
    by_day.add_column("day", justify="right")
    for arm in params["arms"]:
        by_day.add_column(arm, justify="right")
    for n in range(params["days"]):
        by_day.add_row(
            str(n + 1), *[_cell(arms[a]["days"][n]["likes_per_impression"], "ratio") for a in params["arms"]]
        )
    by_day.caption = (
        f"stored as ootd.evaluations id {row['id']}; the judge is the hidden truth (ootd_truth), which the ranking "
        "cannot read; definitions: docs/evaluation.md"
    )
    console.print(by_day)


def plot_online(row: dict, path: str) -> str:
    """A PNG of likes per impression by day and arm (matplotlib, no display); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params, arms = row["params"], row["metrics"]["arms"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    days = list(range(1, params["days"] + 1))
    for arm in params["arms"]:
        ax.plot(days, [float(d["likes_per_impression"] or 0) for d in arms[arm]["days"]], marker="o", label=arm)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("likes per impression")
    ax.set_title(
        f"ootd evaluate --online: {params['users']:,} users x {params['days']} days, seed {params['seed']} "
        f"(run {row['id']})",
        fontsize=10,
    )
    top = max((float(d["likes_per_impression"] or 0) for a in params["arms"] for d in arms[a]["days"]), default=0)
    ax.set_ylim(0, max(top * 1.25, 0.01))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", ncol=len(params["arms"]), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path
