"""Talking to the LLM through the `openai` client, one ledger row per request.

The client is created with `max_retries=0`: retries happen here, in
`call_with_retries`, so that every HTTP request (including each retry after a
429 or a 5xx) becomes its own `ootd.llm_calls` row, and Retry-After is
honoured exactly.  A stylist or embedder makes exactly one request per call.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from batch import embed
from batch.titles import MAX_PROMPT_TITLES
from batch.types import Attempt, Cluster, Usage, Vocabulary, pool_json_schema

T = TypeVar("T")

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
MAX_RETRY_AFTER_S = 60.0


# ------------------------------------------------------------------ prompt --
SYSTEM_PROMPT = (
    "You are the head stylist of a fashion app. You design a daily pool of outfits for one style "
    "cluster: people who share an archetype and today's weather. Every outfit must be wearable in "
    "that weather, true to the archetype, and varied enough that people with different vetoes still "
    "find options. Answer only with JSON matching the schema."
)
# Followed by the titles as JSON strings ("A", "B"), then a period (tests/fake_openai.py reads them back).
AVOID_TITLES_PREFIX = "Do not use any of these titles, taken by other pools of this date or within 3 days: "


def build_messages(cluster: Cluster, vocabulary: Vocabulary, feedback: str | None = None) -> list[dict[str, str]]:
    """The chat messages for one cluster (the same for every provider)."""
    lines = [
        f"Cluster {cluster.cluster_id} for {cluster.pool_date.isoformat()}: {cluster.members} people.",
        f"Archetype: {cluster.archetype} ({cluster.archetype_adjective}; {', '.join(cluster.archetype_keywords)}).",
        f"Weather: {cluster.weather} ({cluster.weather_adjective}; {', '.join(cluster.weather_keywords)})"
        + (f", around {cluster.mean_temp_c:.0f} °C." if cluster.mean_temp_c is not None else "."),
        f"Most preferred colors: {', '.join(cluster.top_colors) or 'none'}.",
        f"Most liked categories: {', '.join(cluster.top_liked_categories) or 'none'}.",
        f"Commonly vetoed categories (keep a few outfits that avoid them): {', '.join(cluster.common_vetoes) or 'none'}.",
        f"Commonly vetoed colors: {', '.join(cluster.common_color_vetoes) or 'none'}.",
        f"Mean vibe {cluster.mean_vibe:.2f}, trend {cluster.mean_trend:.2f}, dare {cluster.mean_dare:.2f} (0..1).",
        f"Main cities: {', '.join(cluster.cities) or 'various'}.",
        "",
        'Design exactly 20 outfits: 10 with daypart "Daytime" and 10 with daypart "NightOut" (from 15:00 on).',
        'Each: a shop-window title naming the hero piece (e.g. "Beige Silk Midi Skirt"), the hero piece\'s '
        "category and color from the allowed lists, 2 to 6 pieces (hero first), vibe/trend/dare in [0, 1], "
        "and a one-line reason. All titles distinct; use at least 6 categories and 5 colors.",
        f"Allowed categories: {', '.join(vocabulary.categories)}.",
        f"Allowed colors: {', '.join(vocabulary.colors)}.",
    ]
    if cluster.avoid_titles:
        # The likeliest repeats (its own archetype x weather's, then its neighbours'), bounded:
        # validation checks the answer against every taken title, and a repeat is retried.
        listed = cluster.avoid_titles[:MAX_PROMPT_TITLES]
        lines.append(AVOID_TITLES_PREFIX + ", ".join(json.dumps(t, ensure_ascii=False) for t in listed) + ".")
        if len(cluster.avoid_titles) > len(listed):
            lines.append(
                f"{len(cluster.avoid_titles) - len(listed)} more titles are taken too: name each hero piece "
                "with its own color, material and cut."
            )
    if feedback:
        lines += ["", f"Your previous answer was rejected: {feedback}. Fix these problems."]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def estimate_tokens(text: str) -> int:
    """About four characters a token: used for the offline stylist's ledger rows."""
    return max(1, len(text) // 4)


# --------------------------------------------------------------- providers --
def make_client(timeout: float, base_url: str | None = None, api_key: str | None = None):
    """An `openai.OpenAI` client that never retries by itself (we do, and log each request)."""
    from openai import OpenAI

    return OpenAI(
        api_key=api_key or os.environ.get("OPENAI_API_KEY"),
        base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
        timeout=timeout,
        max_retries=0,
    )


class OpenAIStylist:
    """Chat completions with a strict JSON schema (structured outputs); one request per call."""

    name = "openai"

    def __init__(self, client: Any, model: str = DEFAULT_CHAT_MODEL):
        self.client = client
        self.model = model

    def generate(self, cluster: Cluster, vocabulary: Vocabulary, feedback: str | None = None) -> tuple[str, Usage]:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=build_messages(cluster, vocabulary, feedback),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "outfit_pool", "strict": True, "schema": pool_json_schema(vocabulary)},
            },
            temperature=0.8,
        )
        usage = Usage(response.usage.prompt_tokens, response.usage.completion_tokens) if response.usage else Usage()
        choice = response.choices[0]
        content = choice.message.content
        if content is None:
            refusal = getattr(choice.message, "refusal", None)
            raise ValueError(f"the model returned no content ({refusal or choice.finish_reason})")
        return content, usage


class OpenAIEmbedder:
    """The embeddings API at 32 dimensions: one request per cluster (20 texts)."""

    name = "openai"

    def __init__(self, client: Any, model: str = DEFAULT_EMBEDDING_MODEL):
        self.client = client
        self.model = model

    def embed(self, texts: list[str]) -> tuple[np.ndarray, Usage]:
        response = self.client.embeddings.create(model=self.model, input=texts, dimensions=embed.DIMENSIONS)
        vectors = np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=np.float32)
        if vectors.shape != (len(texts), embed.DIMENSIONS):
            raise ValueError(f"expected {len(texts)} embeddings of {embed.DIMENSIONS} dimensions, got {vectors.shape}")
        usage = Usage(response.usage.prompt_tokens, 0) if response.usage else Usage()
        return embed.normalize(vectors), usage


class OfflineEmbedder:
    """batch.embed's feature hashing: no request, so no ledger row."""

    name = "offline"
    model = "ootd-feature-hash-32"

    def embed(self, texts: list[str]) -> tuple[np.ndarray, Usage]:
        return embed.embed_texts(texts), Usage()


def outfit_text(outfit: dict[str, Any], cluster: Cluster) -> str:
    """What gets embedded: the outfit's own words plus its archetype's vocabulary.

    User taste vectors are built from archetype keywords, colors and categories
    (batch/seed.py), so these words put outfits in the same space.
    """
    return (
        f"{outfit['title']}. {outfit['color']} {outfit['category']}. {', '.join(outfit['pieces'])}. "
        f"{cluster.archetype} {' '.join(cluster.archetype_keywords)}."
    )


# ---------------------------------------------------------------- retries --
@dataclass
class Failure(Exception):
    """A request that failed for good (retries exhausted or not retryable)."""

    message: str
    http_status: int | None = None

    def __str__(self) -> str:
        return self.message


def classify(exc: BaseException) -> tuple[bool, int | None, float | None, str]:
    """(retryable, http_status, retry_after_seconds, message) for an exception."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return True, None, None, "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return True, None, None, f"connection error: {exc}"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return retryable, status, retry_after(exc.response.headers), f"HTTP {status}: {_api_message(exc)}"
    return False, None, None, f"{type(exc).__name__}: {exc}"


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped."""
    try:
        if headers.get("retry-after-ms"):
            return min(float(headers["retry-after-ms"]) / 1000.0, MAX_RETRY_AFTER_S)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError, OverflowError):
        return None


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))[:200]


def call_with_retries(
    fn: Callable[[], tuple[T, Usage]],
    *,
    kind: str,
    provider: str,
    model: str,
    attempts: list[Attempt],
    max_retries: int,
    sleep: Callable[[float], None] = time.sleep,
    before_send: Callable[[str, int], int | None] | None = None,
) -> T:
    """Call `fn` until it succeeds, appending one Attempt per request.

    Retries timeouts, connection errors, 408/409/429 and 5xx up to
    `max_retries` times, waiting Retry-After when the server gives one, else
    an exponential backoff with jitter (0.5 s, 1 s, 2 s ... capped at 8 s).
    `before_send(kind, attempt)` runs before every request and returns the id
    of its ledger row, so a request the process dies during is still counted.
    """
    number = sum(1 for a in attempts if a.kind == kind)
    for retry in range(max_retries + 1):
        number += 1
        ledger_id = before_send(kind, number) if before_send else None
        started = time.perf_counter()
        try:
            value, usage = fn()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then re-raised or retried
            retryable, status, wait, message = classify(exc)
            attempts.append(
                Attempt(
                    kind=kind,
                    model=model,
                    provider=provider,
                    attempt=number,
                    status="error",
                    latency_ms=_ms(started),
                    http_status=status,
                    error=message,
                    ledger_id=ledger_id,
                )
            )
            if not retryable or retry == max_retries:
                raise Failure(message, status) from exc
            sleep(wait if wait is not None else min(8.0, 0.5 * 2**retry) * (0.5 + random.random() / 2))
            continue
        attempts.append(
            Attempt(
                kind=kind,
                model=model,
                provider=provider,
                attempt=number,
                status="ok",
                latency_ms=_ms(started),
                usage=usage,
                http_status=200 if provider == "openai" else None,
                ledger_id=ledger_id,
            )
        )
        return value
    raise AssertionError("unreachable")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def ledger_rows(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """Attempts as the JSON rows ootd.record_llm_calls() takes (an id finishes a row written before sending)."""
    return [
        {
            "id": a.ledger_id,
            "provider": a.provider,
            "kind": a.kind,
            "model": a.model,
            "attempt": a.attempt,
            "status": a.status,
            "http_status": a.http_status,
            "prompt_tokens": a.usage.prompt_tokens,
            "completion_tokens": a.usage.completion_tokens,
            "latency_ms": a.latency_ms,
            "error": (a.error or None) and a.error[:1000],
        }
        for a in attempts
    ]
