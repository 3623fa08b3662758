"""The shapes that cross between the nightly batch's steps.

A `Cluster` is one row of `ootd.cluster_demand(date)` (K of them, never N
users), with the titles other pools dated within 3 days already use
(`ootd.taken_titles(date)`, its own archetype x weather's first), which its
pool must not repeat.  A stylist turns a Cluster into a pool: a list of 20 outfit dicts in
the exact shape of `pool_json_schema()` (the LLM's structured-output schema),
which `batch.validate` checks before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

POOL_SIZE = 20
PER_DAYPART = 10
DAYPARTS = ("Daytime", "NightOut")


@dataclass(frozen=True)
class Cluster:
    """One style cluster for one date, with the aggregates that enrich the prompt."""

    pool_date: date
    cluster_id: str  # e.g. "20260420_Minimal_Sunny"
    archetype: str  # e.g. "Minimal"
    archetype_adjective: str  # e.g. "minimalist"
    archetype_keywords: tuple[str, ...]
    weather: str  # e.g. "Sunny"
    weather_adjective: str  # e.g. "sun-ready"
    weather_keywords: tuple[str, ...]
    members: int
    top_colors: tuple[str, ...] = ()  # most common preferred colors, most common first
    top_liked_categories: tuple[str, ...] = ()
    common_vetoes: tuple[str, ...] = ()  # most commonly disliked categories
    common_color_vetoes: tuple[str, ...] = ()
    mean_vibe: float = 0.5
    mean_trend: float = 0.5
    mean_dare: float = 0.5
    cities: tuple[str, ...] = ()  # cities with the most members
    mean_temp_c: float | None = None
    has_pool: bool = False  # already generated for this date
    avoid_titles: tuple[str, ...] = ()  # titles taken by pools within 3 days (batch.titles), likeliest first


@dataclass(frozen=True)
class Vocabulary:
    """Controlled vocabulary from the reference tables (ootd.vocabulary())."""

    categories: tuple[str, ...]
    colors: tuple[str, ...]
    archetypes: tuple[str, ...] = ()
    weather: tuple[str, ...] = ()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Attempt:
    """One request to a provider: becomes one row of ootd.llm_calls."""

    kind: str  # 'chat' | 'embedding'
    model: str
    provider: str  # 'openai' | 'offline'
    attempt: int
    status: str  # 'ok' | 'invalid' | 'error'
    latency_ms: float
    usage: Usage = field(default_factory=Usage)
    http_status: int | None = None
    error: str | None = None
    ledger_id: int | None = None  # its ootd.llm_calls row, written (status 'sent') before sending


class Stylist(Protocol):
    """Generates a cluster's pool.  Returns the raw outfits (list of dicts in
    the shape of pool_json_schema()['properties']['outfits']['items'])."""

    name: str  # provider name for the ledger
    model: str

    def generate(
        self, cluster: Cluster, vocabulary: Vocabulary, feedback: str | None = None
    ) -> tuple[list[dict[str, Any]], Usage]: ...


def pool_json_schema(vocabulary: Vocabulary) -> dict[str, Any]:
    """Strict JSON schema for one pool; enums come from the reference tables."""
    outfit = {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "daypart", "category", "color", "pieces", "vibe", "trend", "dare", "reason"],
        "properties": {
            "title": {"type": "string", "description": "Shop-window title, e.g. 'Beige Silk Midi Skirt'"},
            "daypart": {"type": "string", "enum": list(DAYPARTS)},
            "category": {
                "type": "string",
                "enum": list(vocabulary.categories),
                "description": "category of the hero piece",
            },
            "color": {"type": "string", "enum": list(vocabulary.colors), "description": "color of the hero piece"},
            "pieces": {
                "type": "array",
                "items": {"type": "string"},
                "description": "2 to 6 garments and accessories, hero piece first",
            },
            "vibe": {"type": "number", "description": "0 = quiet, 1 = expressive"},
            "trend": {"type": "number", "description": "0 = timeless, 1 = of the moment"},
            "dare": {"type": "number", "description": "0 = safe, 1 = daring"},
            "reason": {"type": "string", "description": "one line: why this suits the cluster today"},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["outfits"],
        "properties": {"outfits": {"type": "array", "items": outfit}},
    }
