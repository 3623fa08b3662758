"""Prometheus metrics for the API (prometheus_client).

Under gunicorn each worker is a process, so `ootd serve` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh temporary directory before any worker
starts (see api/server.py): every worker writes its samples there, `/metrics`
aggregates all of them, and a dead worker's live gauges are dropped.
Without that variable (the Flask test client, `flask run`) the process's own
default registry is served.

The metric objects are module-level singletons: the registry rejects
duplicates, and several apps in one process (tests) share them.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Latency buckets around the 20 ms feed goal.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "ootd_http_requests_total", "HTTP requests by route template, method and status.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "ootd_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=BUCKETS,
)
FEEDS_RELAXED = Counter(
    "ootd_feed_relaxed_total", "Feeds served with at least one veto rule relaxed (the veto cascade fired)."
)
RULES_RELAXED = Counter("ootd_feed_relaxed_rules_total", "Veto rules relaxed, summed over the feeds served.")
FEEDS_EMPTY = Counter("ootd_feed_empty_total", "Feed requests answered 503 because no pool exists yet.")
LIKES = Counter("ootd_likes_total", "Like and unlike calls by outcome.", ["action", "outcome"])

# Serving state, read from ootd.serving_status() when /metrics is scraped.
POOLS = Gauge("ootd_pools", "Pools generated for today's UTC date.", multiprocess_mode="mostrecent")
CACHED_POOLS = Gauge(
    "ootd_cached_pools", "Today's pools present in the UNLOGGED cache.", multiprocess_mode="mostrecent"
)
FALLBACK_POOLS = Gauge(
    "ootd_fallback_pools",
    "Today's pools missing from the cache, so feeds read them from durable storage.",
    multiprocess_mode="mostrecent",
)
READY = Gauge(
    "ootd_ready", "1 when today's pools exist (what /readyz reports), else 0.", multiprocess_mode="mostrecent"
)
DATABASE_UP = Gauge(
    "ootd_database_up",
    "1 when the last scrape reached the database as ootd_api, else 0.",
    multiprocess_mode="mostrecent",
)

# Read replicas (api/replicas.py, DATABASE_READ_URLS).
FEEDS_ROUTED = Counter(
    "ootd_feed_routed_total", "Feeds served, by the database that answered (primary, replica-1, ...).", ["backend"]
)
REPLICA_SKIPPED = Counter(
    "ootd_replica_skipped_total",
    "Feed requests that passed a replica by, and why: down, lagging (past OOTD_REPLICA_MAX_LAG_S), behind "
    "(not yet at the client's Ootd-Min-LSN), error (a 503 from it mid-request) or no_pools.",
    ["replica", "reason"],
)
REPLICA_STATE = Gauge(
    "ootd_replica_state",
    "1 for each replica's current state (up, down, lagging), 0 for the others.",
    ["replica", "state"],
    multiprocess_mode="mostrecent",
)
REPLICA_LAG = Gauge(
    "ootd_replica_lag_seconds",
    "Seconds since the replica's last replayed commit (0 when it replayed all it received); NaN when down.",
    ["replica"],
    multiprocess_mode="mostrecent",
)
REPLICA_STATES = ("up", "down", "lagging")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """Count one request and its latency (label children cached: `labels()` costs microseconds per call)."""
    if method not in _METHODS:
        method = "OTHER"  # label values stay bounded whatever a client sends
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = _children.setdefault(
            key, (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
        )
    children[0].inc()
    children[1].observe(seconds)


def record_serving_status(status: dict | None) -> None:
    """Set the serving gauges from one ootd.serving_status() row (None: database unreachable)."""
    DATABASE_UP.set(0 if status is None else 1)
    if status is None:
        return
    POOLS.set(status["pools"])
    CACHED_POOLS.set(status["cached_pools"])
    FALLBACK_POOLS.set(status["fallback_pools"])
    READY.set(1 if status["ready"] else 0)


def record_replica(name: str, state: str, lag_s: float | None) -> None:
    """Set one replica's state and lag gauges (after each of its health checks)."""
    for candidate in REPLICA_STATES:
        REPLICA_STATE.labels(name, candidate).set(1 if candidate == state else 0)
    REPLICA_LAG.labels(name).set(float("nan") if lag_s is None else lag_s)


def feeds_routed() -> dict[str, int]:
    """ootd_feed_routed_total by backend, summed over every worker (for /readyz)."""
    counts: dict[str, int] = {}
    for metric in _registry().collect():
        if metric.name == "ootd_feed_routed":
            for sample in metric.samples:
                if sample.name == "ootd_feed_routed_total":
                    backend = sample.labels["backend"]
                    counts[backend] = counts.get(backend, 0) + int(sample.value)
    return counts


def _registry() -> Any:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The metrics text of every worker (multiprocess mode) or of this process."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST
