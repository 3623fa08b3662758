"""`ootd nightly`: one LLM call per style cluster, pools stored durably, cache refreshed.

Steps, each a named query:
 0. refuse a day more than one day after the database's date (unless forced),
    and refill the cache if a crash emptied it (ootd.rehydrate_cache);
 1. take the nightly advisory lock (a second run waits, or exits with --no-wait);
 2. record the day's weather for every city (the first forecast of a day wins);
 3. read ootd.cluster_demand(day): K rows, never the N users, and
    ootd.taken_titles(day): every title of every pool dated within 3 days
    (the day included), once for all clusters, so prompts, validation and the
    offline stylist avoid them: titles are unique across all pools, since the
    feed serves neighbour pools too;
 4. for each cluster without a pool, in a bounded thread pool: generate,
    validate (one retry with the problems as feedback), claim its titles
    (batch.titles: a title another cluster of this run claimed first is
    invalid output too), embed; every request's ledger row is committed
    (status 'sent') before the request goes out.  The offline stylist runs
    the clusters one at a time, in ootd.cluster_demand's order, so each sees
    the titles of those before it and a run (or a resumed one) titles
    identically;
 5. as each cluster finishes, in one transaction: its ledger rows finished
    and, if valid, its pool (so a killed run resumes where it stopped, and its
    ledger counts every request a server may have billed); ootd.store_pool
    refuses a pool with a taken title (23P01: another writer, such as
    ootd.generate_pool, stored it meanwhile): the cluster fails, keeps its
    ledger rows, and a re-run generates it;
 6. ootd.refresh_pool_cache(day) in one transaction.
A cluster that fails keeps serving its most recent earlier pool (ootd.feed
falls back to it); nothing partial is ever stored.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Callable, Protocol

import numpy as np
import psycopg

from batch.clusters import load_demand, load_taken_titles, load_vocabulary
from batch.feeds import FeedsReport, refresh_feeds, serves_ahead
from batch.llm import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_EMBEDDING_MODEL,
    Failure,
    OfflineEmbedder,
    OpenAIEmbedder,
    OpenAIStylist,
    build_messages,
    call_with_retries,
    estimate_tokens,
    ledger_rows,
    make_client,
    outfit_text,
)
from batch.titles import TakenTitles, clash_message
from batch.types import Attempt, Cluster, Stylist, Usage, Vocabulary
from batch.validate import PoolInvalid, validate_pool
from db.connect import Jsonb, all_rows, connect, one, run


class Embedder(Protocol):
    name: str
    model: str

    def embed(self, texts: list[str]) -> tuple[np.ndarray, Usage]: ...


class NightlyBusy(RuntimeError):
    """Another nightly run holds the lock and we were asked not to wait."""


@dataclass(frozen=True)
class NightlyConfig:
    day: date
    llm: str = "offline"  # 'offline' | 'openai'
    model: str = DEFAULT_CHAT_MODEL
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    concurrency: int = 4
    timeout_s: float = 60.0
    max_retries: int = 3  # per request, for 429 / 5xx / timeouts
    wait: bool = True  # wait for a concurrent run instead of exiting
    force: bool = False  # allow a day more than one day after the database's date
    serve_ahead: bool = False  # then write every user's served feed (batch/feeds.py; `ootd nightly` does)
    feed_jobs: int = 2  # sessions writing them

    @classmethod
    def from_env(cls, day: date, llm: str | None = None, **overrides: Any) -> "NightlyConfig":
        chosen = llm or ("openai" if os.environ.get("OPENAI_API_KEY") else "offline")
        return cls(
            day=day,
            llm=chosen,
            model=os.environ.get("OOTD_LLM_MODEL", DEFAULT_CHAT_MODEL),
            embedding_model=os.environ.get("OOTD_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL),
            **overrides,
        )


@dataclass
class ClusterOutcome:
    cluster: Cluster
    status: str  # 'stored' | 'failed'
    attempts: list[Attempt] = field(default_factory=list)
    outfits: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class NightlyReport:
    day: date
    llm: str
    model: str
    users: int = 0
    clustered_users: int = 0
    clusters: int = 0
    skipped: int = 0  # already had a pool for the day
    stored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    chat_requests: int = 0
    embedding_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_outfits: int = 0
    restored_cache_rows: int = 0  # cache rows ootd.rehydrate_cache put back before the run
    seconds: float = 0.0
    cost: dict[str, Any] | None = None  # the day's row of ootd.llm_cost_daily
    served: FeedsReport | None = None  # the served feeds written after the pools (serve_ahead)


Progress = Callable[[str, Any], None]


def make_providers(config: NightlyConfig) -> tuple[Stylist, Embedder]:
    if config.llm == "offline":
        from batch.stylist_offline import OfflineStylist

        return OfflineStylist(), OfflineEmbedder()
    if config.llm != "openai":
        raise ValueError(f"unknown LLM provider {config.llm!r} (use offline or openai)")
    if not os.environ.get("OPENAI_API_KEY"):
        raise ValueError("--llm openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)")
    client = make_client(config.timeout_s)
    return OpenAIStylist(client, config.model), OpenAIEmbedder(client, config.embedding_model)


def run_nightly(
    url: str | None,
    config: NightlyConfig,
    *,
    stylist: Stylist | None = None,
    embedder: Embedder | None = None,
    weather: Any = None,
    progress: Progress | None = None,
) -> NightlyReport:
    """Run the nightly batch for `config.day`; see the module docstring."""
    started = time.perf_counter()
    notify = progress or (lambda event, value: None)
    if stylist is None or embedder is None:
        default_stylist, default_embedder = make_providers(config)
        stylist, embedder = stylist or default_stylist, embedder or default_embedder
    report = NightlyReport(day=config.day, llm=stylist.name, model=stylist.model)

    with connect(url, autocommit=True) as conn, connect(url, autocommit=True) as ledger_conn:
        if not config.force:
            run(conn, "check_pool_date", (config.day,))
        report.restored_cache_rows = one(conn, "rehydrate_cache")["restored"]
        ledger = RequestLedger(ledger_conn)
        if not one(conn, "nightly_try_lock")["locked"]:
            if not config.wait:
                raise NightlyBusy("another `ootd nightly` run is in progress; try again later")
            notify("waiting", "another `ootd nightly` run is in progress; waiting for it to finish")
            run(conn, "nightly_lock")
        try:
            vocabulary = load_vocabulary(conn)
            record_weather(conn, config.day, weather)
            taken = load_taken_titles(conn, config.day)
            clusters = load_demand(conn, config.day, taken)
            report.users = one(conn, "count_users")["n"]
            report.clusters = len(clusters)
            report.clustered_users = sum(c.members for c in clusters)
            todo = [c for c in clusters if not c.has_pool]
            report.skipped = len(clusters) - len(todo)
            notify("start", len(todo))
            # Offline, one cluster at a time in demand order: each avoids the titles of those
            # before it, deterministically (and it is CPU-bound: threads would not help).
            workers = 1 if stylist.name == "offline" else max(1, config.concurrency)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(generate_cluster, c, vocabulary, stylist, embedder, config, ledger, taken) for c in todo
                ]
                for future in as_completed(futures):
                    outcome = future.result()
                    _save(conn, outcome, stylist)
                    if outcome.status != "stored":
                        taken.release(outcome.cluster)
                    _count(report, outcome)
                    notify("cluster", outcome)
            report.cached_outfits = one(conn, "refresh_pool_cache", (config.day,))["cached"]
            report.cost = one(conn, "llm_cost_day", (config.day,))
        finally:
            run(conn, "nightly_unlock")
    if config.serve_ahead and serves_ahead(url):  # (a schema before 0020 has none: every feed ranks live)
        notify("serving", None)
        report.served = refresh_feeds(url, None, config.day, jobs=config.feed_jobs)
    report.seconds = time.perf_counter() - started
    return report


class RequestLedger:
    """Commits each LLM request's ledger row (status 'sent') before the request is sent.

    Its own autocommit connection, shared by the worker threads under a lock,
    so a run killed mid-request still counts every request a server may have
    received; the cluster's transaction later finishes the rows by id.
    """

    def __init__(self, conn: Any):
        self._conn = conn
        self._lock = threading.Lock()

    def sender(self, cluster: Cluster, provider: str, model: str) -> Callable[[str, int], int]:
        def before_send(kind: str, attempt: int) -> int:
            with self._lock:
                return one(
                    self._conn,
                    "record_llm_request",
                    (cluster.pool_date, cluster.cluster_id, provider, kind, model, attempt),
                )["id"]

        return before_send


def generate_cluster(
    cluster: Cluster,
    vocabulary: Vocabulary,
    stylist: Stylist,
    embedder: Embedder,
    config: NightlyConfig,
    ledger: RequestLedger | None = None,
    taken: TakenTitles | None = None,
) -> ClusterOutcome:
    """Generate, validate (one retry with feedback) and embed one cluster's pool.

    A pool that uses a taken title (one of `cluster.avoid_titles`, or with
    `taken`, the run's registry: what ootd.taken_titles read plus the pools
    the run accepted since) is invalid output like any other: retried once
    with the titles named.  With `taken`, each attempt's prompt lists the
    titles taken at that moment and a valid pool claims its titles.

    With a `ledger`, every request's ledger row is committed before it is sent;
    without one (ootd.generate_pool's single transaction), the rows are written
    with the outcome.
    """
    attempts: list[Attempt] = []
    outcome = ClusterOutcome(cluster=cluster, status="failed", attempts=attempts)
    feedback: str | None = None
    outfits: list[dict[str, Any]] | None = None
    try:
        for _ in range(2):  # the first answer and one retry on invalid output
            current = replace(cluster, avoid_titles=taken.for_cluster(cluster)) if taken is not None else cluster
            content = call_with_retries(
                lambda: _generate(stylist, current, vocabulary, feedback),
                kind="chat",
                provider=stylist.name,
                model=stylist.model,
                attempts=attempts,
                max_retries=config.max_retries,
                before_send=ledger and ledger.sender(cluster, stylist.name, stylist.model),
            )
            try:
                outfits = validate_pool(content, vocabulary, current.avoid_titles)
                clashes = taken.claim(cluster, [o["title"] for o in outfits]) if taken is not None else []
                if clashes:  # another cluster of this run took one since the prompt was written
                    outfits = None
                    raise PoolInvalid(clash_message(clashes))
                break
            except PoolInvalid as exc:
                attempts[-1].status, attempts[-1].error = "invalid", str(exc)
                feedback = str(exc)
        if outfits is None:
            outcome.error = f"invalid output twice: {feedback}"
            return outcome
        texts = [outfit_text(o, cluster) for o in outfits]
        if embedder.name == "offline":
            vectors, _ = embedder.embed(texts)
        else:
            vectors = call_with_retries(
                lambda: embedder.embed(texts),
                kind="embedding",
                provider=embedder.name,
                model=embedder.model,
                attempts=attempts,
                max_retries=config.max_retries,
                before_send=ledger and ledger.sender(cluster, embedder.name, embedder.model),
            )
    except Failure as exc:
        outcome.error = str(exc)
        return outcome
    for outfit, vector in zip(outfits, vectors):
        outfit["embedding"] = [round(float(x), 6) for x in vector]
    outcome.outfits, outcome.status = outfits, "stored"
    return outcome


def _generate(stylist: Stylist, cluster: Cluster, vocabulary: Vocabulary, feedback: str | None) -> tuple[Any, Usage]:
    content, usage = stylist.generate(cluster, vocabulary, feedback)
    if stylist.name == "offline" and not (usage.prompt_tokens or usage.completion_tokens):
        # What the same request would have cost an LLM, so cost views compare like with like.
        prompt = "".join(m["content"] for m in build_messages(cluster, vocabulary, feedback))
        usage = Usage(estimate_tokens(prompt), estimate_tokens(str(content)))
    return content, usage


def record_weather(conn: Any, day: date, provider: Any) -> None:
    from batch.weather import City, OfflineWeather

    provider = provider or OfflineWeather()
    cities = [
        City(
            name=r["name"],
            country=r["country"],
            timezone=r["timezone"],
            latitude=r["latitude"],
            longitude=r["longitude"],
        )
        for r in all_rows(conn, "weather_cities")
    ]
    forecasts = provider.forecast(cities, day)
    rows = [{"city": f.city, "condition": f.condition, "temp_c": round(float(f.temp_c), 1)} for f in forecasts]
    one(conn, "put_weather", (day, provider.name, Jsonb(rows)))


def _save(conn: Any, outcome: ClusterOutcome, stylist: Stylist) -> None:
    """Ledger rows and (if valid) the pool, in one transaction."""
    cluster = outcome.cluster
    with conn.transaction():
        one(conn, "record_llm_calls", (cluster.pool_date, cluster.cluster_id, Jsonb(ledger_rows(outcome.attempts))))
        if outcome.status == "stored":
            try:
                with conn.transaction():  # a savepoint: a refused pool keeps its ledger rows
                    one(
                        conn,
                        "store_pool",
                        (
                            cluster.pool_date,
                            cluster.cluster_id,
                            stylist.name,
                            stylist.model,
                            cluster.members,
                            Jsonb(outcome.outfits),
                        ),
                    )
            except psycopg.errors.ExclusionViolation as exc:  # a title another writer stored meanwhile
                outcome.status, outcome.outfits = "failed", []
                outcome.error = f"{exc.diag.message_primary} (SQLSTATE 23P01)"


def _count(report: NightlyReport, outcome: ClusterOutcome) -> None:
    if outcome.status == "stored":
        report.stored += 1
    else:
        report.failed.append((outcome.cluster.cluster_id, outcome.error or "unknown error"))
    for a in outcome.attempts:
        if a.kind == "chat":
            report.chat_requests += 1
        else:
            report.embedding_requests += 1
        report.prompt_tokens += a.usage.prompt_tokens
        report.completion_tokens += a.usage.completion_tokens
