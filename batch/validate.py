"""Validation of a generated pool, before anything is stored.

The LLM's structured output is a promise, not a guarantee (and some
OpenAI-compatible servers ignore `strict`).  Everything is checked here:
shape, counts per daypart, enums from the reference tables, score ranges,
duplicate titles, and titles already taken by another pool within 3 days (the
cluster's `avoid_titles`, from ootd.taken_titles, compared by
`batch.titles.title_key`: trimmed, single-spaced, in any case).  The first problems
found become the feedback of the one retry, so the message is written for the
model as much as for people.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from batch.titles import TAKEN_PROBLEM, title_key
from batch.types import DAYPARTS, PER_DAYPART, POOL_SIZE, Vocabulary

OUTFIT_KEYS = {"title", "daypart", "category", "color", "pieces", "vibe", "trend", "dare", "reason"}
_GENERIC_TITLE = re.compile(r"^\s*(outfit|look|item)\s*#?\s*\d+\s*$", re.IGNORECASE)
_MAX_PROBLEMS = 5


class PoolInvalid(ValueError):
    """The pool cannot be stored; the message lists the first problems."""


def parse_content(content: Any) -> Any:
    """The model's message content (a JSON string) or a provider's list, as Python."""
    if isinstance(content, (list, dict)):
        return content
    if not isinstance(content, str):
        raise PoolInvalid(f"expected JSON text, got {type(content).__name__}")
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise PoolInvalid(f"response is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def validate_pool(content: Any, vocabulary: Vocabulary, avoid_titles: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Return the 20 outfits, normalized, or raise PoolInvalid.

    `avoid_titles` are the titles other pools within 3 days already use: an
    outfit whose title equals one (trimmed, in any case) is a problem that names them.
    """
    data = parse_content(content)
    if isinstance(data, dict):
        if set(data) != {"outfits"}:
            raise PoolInvalid(f'expected an object with the single key "outfits", got keys {sorted(data)}')
        data = data["outfits"]
    if not isinstance(data, list):
        raise PoolInvalid('"outfits" must be an array')

    problems: list[str] = []
    outfits: list[dict[str, Any]] = []
    numbered: list[tuple[int, dict[str, Any]]] = []  # (its number in the answer, the outfit)
    for i, item in enumerate(data, start=1):
        outfit, item_problems = _check_outfit(i, item, vocabulary)
        problems.extend(item_problems)
        if outfit:
            outfits.append(outfit)
            numbered.append((i, outfit))

    counts = {d: sum(1 for o in data if isinstance(o, dict) and o.get("daypart") == d) for d in DAYPARTS}
    if len(data) != POOL_SIZE or any(n != PER_DAYPART for n in counts.values()):
        problems.insert(
            0,
            f"expected {POOL_SIZE} outfits ({PER_DAYPART} Daytime, {PER_DAYPART} NightOut), "
            f"got {len(data)} ({counts['Daytime']} Daytime, {counts['NightOut']} NightOut)",
        )
    seen: dict[str, int] = {}
    for i, outfit in numbered:
        key = outfit["title"].casefold()
        if key in seen:
            problems.append(f'outfit {i}: duplicate title "{outfit["title"]}" (also outfit {seen[key]})')
        seen.setdefault(key, i)
    avoid = {title_key(t): t for t in avoid_titles}
    repeats = [f'"{avoid[title_key(o["title"])]}" (outfit {i})' for i, o in numbered if title_key(o["title"]) in avoid]
    if repeats:
        problems.append(f"{TAKEN_PROBLEM}: {', '.join(repeats)}; every title must be new")

    if problems:
        more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
        raise PoolInvalid("; ".join(problems[:_MAX_PROBLEMS]) + more)
    return outfits


def _check_outfit(i: int, item: Any, vocabulary: Vocabulary) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(item, dict):
        return None, [f"outfit {i}: expected an object"]
    problems: list[str] = []
    keys = set(item)
    if keys != OUTFIT_KEYS:
        missing, extra = sorted(OUTFIT_KEYS - keys), sorted(keys - OUTFIT_KEYS)
        problems.append(
            f"outfit {i}: "
            + ", ".join(([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else []))
        )
        return None, problems
    title, reason, pieces = item["title"], item["reason"], item["pieces"]
    if not isinstance(title, str) or not 3 <= len(title.strip()) <= 120:
        problems.append(f"outfit {i}: title must be 3 to 120 characters")
    elif _GENERIC_TITLE.match(title):
        problems.append(f'outfit {i}: title "{title}" is generic; name the hero piece')
    if item["daypart"] not in DAYPARTS:
        problems.append(f"outfit {i}: daypart {item['daypart']!r} is not one of {list(DAYPARTS)}")
    if item["category"] not in vocabulary.categories:
        problems.append(f"outfit {i}: category {item['category']!r} is not in the category enum")
    if item["color"] not in vocabulary.colors:
        problems.append(f"outfit {i}: color {item['color']!r} is not in the color enum")
    if (
        not isinstance(pieces, list)
        or not 2 <= len(pieces) <= 6
        or not all(isinstance(p, str) and p.strip() for p in pieces)
    ):
        problems.append(f"outfit {i}: pieces must be 2 to 6 non-empty strings")
    for score in ("vibe", "trend", "dare"):
        value = item[score]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0.0 <= value <= 1.0
        ):
            problems.append(f"outfit {i}: {score} must be a number between 0 and 1, got {value!r}")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 300 or "\n" in reason.strip():
        problems.append(f"outfit {i}: reason must be one line of at most 300 characters")
    if problems:
        return None, problems
    return {
        "title": " ".join(title.split()),
        "daypart": item["daypart"],
        "category": item["category"],
        "color": item["color"],
        "pieces": [" ".join(p.split()) for p in pieces],
        "vibe": round(float(item["vibe"]), 3),
        "trend": round(float(item["trend"]), 3),
        "dare": round(float(item["dare"]), 3),
        "reason": " ".join(reason.split()),
    }, []
