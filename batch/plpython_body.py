"""The body of `ootd.generate_pool(p_cluster_id text)`: one cluster's pool, generated from inside PostgreSQL.

Migration 0005 installs this file, verbatim, as the body of a plpython3u
function, followed by one line: `return generate_pool(plpy, p_cluster_id, SD)`.
There is no second copy: the tests run the same rendered text through
tests/plpy_standin.py, and the generation itself is the batch's own code
(batch.nightly.generate_cluster: the prompt, the strict JSON schema, the
retries, the validation with one retry on invalid output, the embeddings),
stored through the batch's own named queries (db/queries.sql:
put_weather, cluster_demand, record_llm_calls, store_pool, refresh_pool_cache).

What runs where: plpy is PL/Python's module (or the stand-in), SD the
function's private dictionary (plans and the OpenAI client are cached there
for the life of the backend).  The server's Python must be able to import
ootd and its dependencies (openai, numpy, psycopg): install ootd into it, or
put ootd's site-packages on PYTHONPATH in the server's environment.

Configuration, like `ootd nightly`: OPENAI_API_KEY (without it, the offline
stylist), OPENAI_BASE_URL, OOTD_LLM_MODEL and OOTD_EMBEDDING_MODEL from the
server's environment; ALTER DATABASE ... SET ootd.openai_base_url /
ootd.llm_model / ootd.embedding_model / ootd.llm_timeout override them.  Only
database-wide settings count: a session's SET could otherwise send the
server's API key to a URL of the caller's choosing.

This text is also the body of a Python function, so: no `from __future__`
import, no top-level `return`, no `global`, and no multi-line string whose
content matters (PL/Python indents every line of the body by one tab).
Changing it changes what the next `alembic upgrade` of a fresh database
installs; existing databases keep their body until a new revision
re-creates the function from this file.
"""

import json
import os
import re
from dataclasses import fields, replace
from datetime import date, datetime
from decimal import Decimal

from batch.clusters import load_demand, load_vocabulary
from batch.llm import OfflineEmbedder, OpenAIEmbedder, OpenAIStylist, ledger_rows, make_client
from batch.nightly import NightlyConfig, generate_cluster, record_weather
from batch.types import Cluster, Vocabulary
from db.connect import Jsonb, all_rows, one

PROVIDER = "plpython"  # ootd.pools.provider and ootd.llm_calls.provider of LLM requests made here
CLUSTER_ID = re.compile(r"^(\d{8})_([A-Z][A-Za-z]+)_([A-Z][A-Za-z]+)$")
SETTINGS = {  # ALTER DATABASE ... SET <name> -> NightlyConfig field / client option
    "ootd.openai_base_url": "base_url",
    "ootd.llm_model": "model",
    "ootd.embedding_model": "embedding_model",
    "ootd.llm_timeout": "timeout_s",
}
JSON_TYPES = (114, 3802)  # json, jsonb: psycopg parses them, PL/Python hands over text
DATE_TYPE = 1082


def generate_pool(plpy, cluster_id, SD):
    """Generate, validate and store one cluster's pool; one row (cluster_id, status, provider, model,
    outfits, requests, error).

    status 'stored': the pool is stored and the day's cache refreshed; 'exists': the cluster already
    had a pool for its day (no LLM call, or a concurrent run stored it first); 'failed': the LLM
    failed or answered invalidly twice (a WARNING says why, the cluster keeps serving its most
    recent earlier pool).  Every LLM request is a row of ootd.llm_calls either way.
    """
    day = cluster_day(plpy, cluster_id)
    conn = PlpyConnection(plpy, SD)
    one(conn, "generate_pool_lock", (cluster_id,))  # a second call for the cluster waits, then finds the pool
    record_weather(conn, day, None)  # as the batch does: the first forecast of a day wins
    cluster = next((c for c in load_demand(conn, day) if c.cluster_id == cluster_id), None)
    if cluster is None:
        plpy.error(
            f"no user is in cluster {cluster_id} on {day.isoformat()}",
            sqlstate="P0002",
            hint=f"SELECT cluster_id FROM ootd.cluster_demand('{day.isoformat()}') lists the day's clusters.",
        )
    if cluster.has_pool:
        return [result_row(cluster_id, "exists")]

    outcome, provider, model, ledger = generate(plpy, SD, conn, cluster, load_vocabulary(conn))
    one(conn, "record_llm_calls", (day, cluster_id, Jsonb(ledger)))
    status = outcome.status
    if status == "stored":
        try:
            one(conn, "store_pool", (day, cluster_id, provider, model, cluster.members, Jsonb(outcome.outfits)))
        except plpy.spiexceptions.UniqueViolation:
            status = "exists"  # `ootd nightly` stored it while we waited for the LLM
        except plpy.spiexceptions.ExclusionViolation as exc:  # a pool stored meanwhile took one of its titles
            status, outcome.error = "failed", f"{exc} (SQLSTATE 23P01)"
        else:
            one(conn, "refresh_pool_cache", (day,))
    if status == "failed":
        plpy.warning(
            f"ootd.generate_pool: cluster {cluster_id} failed: {outcome.error}; "
            "it keeps serving its most recent earlier pool (see ootd.llm_calls)"
        )
    return [
        result_row(
            cluster_id,
            status,
            provider,
            model,
            len(outcome.outfits) if status == "stored" else 0,
            len(ledger),
            outcome.error,
        )
    ]


def generate_pool_json(plpy, demand, vocabulary, SD):
    """The generation and validation part alone, as JSON text: no writes, no ootd tables, no pgvector.

    demand is one row of ootd.cluster_demand(day) and vocabulary is ootd.vocabulary(), as JSON
    (text or parsed).  Returns {"cluster_id", "status", "provider", "model", "outfits" (validated,
    each with its 32-number "embedding"), "ledger" (the rows ootd.record_llm_calls would get),
    "error"}.
    """
    row, words = as_json(demand), as_json(vocabulary)
    day = cluster_day(plpy, row.get("cluster_id"))
    cluster = Cluster(
        pool_date=day,
        **{f.name: as_tuple(row[f.name]) for f in fields(Cluster) if f.name in row and f.name != "pool_date"},
    )
    vocab = Vocabulary(**{f.name: tuple(words.get(f.name) or ()) for f in fields(Vocabulary)})
    outcome, provider, model, ledger = generate(plpy, SD, PlpyConnection(plpy, SD), cluster, vocab)
    return json.dumps(
        {
            "cluster_id": cluster.cluster_id,
            "status": outcome.status,
            "provider": provider,
            "model": model,
            "outfits": outcome.outfits,
            "ledger": ledger,
            "error": outcome.error,
        }
    )


def generate(plpy, SD, conn, cluster, vocabulary):
    """The batch's generate_cluster with providers configured as for `ootd nightly`; returns
    (outcome, provider, model, ledger rows).  Requests made through the openai client are
    recorded as provider 'plpython'."""
    config, stylist, embedder = providers(plpy, SD, conn, cluster.pool_date)
    outcome = generate_cluster(cluster, vocabulary, stylist, embedder, config)
    for attempt in outcome.attempts:
        if attempt.status != "ok":
            plpy.notice(
                f"ootd.generate_pool: {cluster.cluster_id}: {attempt.kind} request {attempt.attempt} "
                f"{attempt.status}: {attempt.error}"
            )
    ledger = ledger_rows(outcome.attempts)
    provider = PROVIDER if stylist.name == "openai" else stylist.name
    for row in ledger:
        if row["provider"] == "openai":
            row["provider"] = PROVIDER
    return outcome, provider, stylist.model, ledger


def providers(plpy, SD, conn, day):
    """NightlyConfig.from_env (OPENAI_API_KEY decides openai vs offline), database settings on top."""
    settings = trusted_settings(conn)
    config = NightlyConfig.from_env(day)
    try:
        timeout = float(settings.get("timeout_s", config.timeout_s))
    except ValueError:
        timeout = float("nan")
    if not 0 < timeout < float("inf"):
        plpy.error(
            f"ootd.llm_timeout must be a positive number of seconds, got {settings['timeout_s']!r}", sqlstate="22023"
        )
    config = replace(
        config,
        timeout_s=timeout,
        model=settings.get("model", config.model),
        embedding_model=settings.get("embedding_model", config.embedding_model),
    )
    if config.llm != "openai":
        from batch.stylist_offline import OfflineStylist

        return config, OfflineStylist(), OfflineEmbedder()
    base_url = settings.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    key = (base_url, os.environ.get("OPENAI_API_KEY"), config.timeout_s)
    clients = SD.setdefault("openai_clients", {})  # one client (and its connection pool) per backend
    if key not in clients:
        clients[key] = make_client(config.timeout_s, base_url=base_url)
    client = clients[key]
    return config, OpenAIStylist(client, config.model), OpenAIEmbedder(client, config.embedding_model)


def trusted_settings(conn):
    """ootd.* settings of ALTER DATABASE <this database> SET (role-independent), by SETTINGS key."""
    found = {}
    for row in all_rows(conn, "generate_pool_settings"):
        name, _, value = row["item"].partition("=")
        if name in SETTINGS and value.strip():
            found[SETTINGS[name]] = value.strip()
    return found


def cluster_day(plpy, cluster_id):
    """The date in a cluster id, or an error (22023) for an id that is not YYYYMMDD_Archetype_Weather."""
    match = CLUSTER_ID.match(cluster_id) if isinstance(cluster_id, str) else None
    day = None
    if match:
        try:
            day = datetime.strptime(match.group(1), "%Y%m%d").date()
        except ValueError:
            pass
    if day is None:
        plpy.error(
            f'cluster id "{cluster_id}" does not match YYYYMMDD_Archetype_Weather (e.g. 20260420_Minimal_Sunny)',
            sqlstate="22023",
        )
    return day


def result_row(cluster_id, status, provider=None, model=None, outfits=0, requests=0, error=None):
    return {
        "cluster_id": cluster_id,
        "status": status,
        "provider": provider,
        "model": model,
        "outfits": outfits,
        "requests": requests,
        "error": error,
    }


def as_json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else dict(value or {})


def as_tuple(value):
    return tuple(value) if isinstance(value, list) else value


class PlpyConnection:
    """Just enough of a psycopg connection for db.connect's one()/all_rows() over plpy, so the
    batch's readers and named queries run unchanged: %s placeholders become $1, $2..., each
    parameter's type follows the Python value (str as text, date, integer, Jsonb as jsonb...),
    plans are prepared once per backend (in SD), and json/jsonb/date columns come back as
    psycopg returns them."""

    def __init__(self, plpy, SD):
        self.plpy = plpy
        self.plans = SD.setdefault("plans", {})

    def execute(self, sql, params=None):
        if isinstance(params, dict):
            raise TypeError("PlpyConnection supports positional %s placeholders only")
        typed = [spi_parameter(value) for value in (params or ())]
        types = tuple(t for t, _ in typed)
        plan = self.plans.get((sql, types))
        if plan is None:
            plan = self.plans[(sql, types)] = self.plpy.prepare(spi_placeholders(sql, len(typed)), list(types))
        return PlpyRows(self.plpy.execute(plan, [v for _, v in typed]))


class PlpyRows:
    """A plpy result as a psycopg cursor with dict rows."""

    def __init__(self, result):
        kinds = dict(zip(result.colnames(), result.coltypes())) if len(result) else {}
        self.rows = [{name: python_value(kinds.get(name), value) for name, value in row.items()} for row in result]

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows


def python_value(type_oid, value):
    if value is None:
        return None
    if type_oid in JSON_TYPES and isinstance(value, str):
        return json.loads(value)
    if type_oid == DATE_TYPE and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def spi_placeholders(sql, count):
    """psycopg's %s (and %%) as SPI's $1, $2... (and %)."""
    found = re.findall(r"%%|%s|%\(", sql)
    if "%(" in found or found.count("%s") != count:
        raise ValueError(f"query needs {found.count('%s')} positional parameters, got {count}: {sql[:80]}")
    numbers = iter(range(1, count + 1))
    return re.sub(r"%%|%s", lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)


def spi_parameter(value):
    """(SQL type, value for plpy): the type psycopg would send for the Python value, except that
    str (and None) are text, since SPI cannot resolve an `unknown` parameter as psycopg's server can."""
    if value is None or isinstance(value, str):
        return "text", value  # psycopg sends `unknown`, which SPI's fixed parameter types cannot coerce
    if isinstance(value, Jsonb):
        return "jsonb", json.dumps(value.obj)
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int):
        return ("integer" if -(2**31) <= value < 2**31 else "bigint" if -(2**63) <= value < 2**63 else "numeric"), value
    if isinstance(value, float):
        return "double precision", value
    if isinstance(value, Decimal):
        return "numeric", value
    if isinstance(value, datetime):
        return ("timestamptz" if value.tzinfo else "timestamp"), value.isoformat()
    if isinstance(value, date):
        return "date", value.isoformat()
    raise TypeError(f"no SQL type for a parameter of type {type(value).__name__}")
