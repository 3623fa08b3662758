"""Pure-Python pieces of the LLM path: validation rules and Retry-After parsing."""

from __future__ import annotations

import copy
import email.utils
import time

import pytest

from batch.llm import Failure, call_with_retries, retry_after
from batch.types import Attempt, Usage, Vocabulary
from batch.validate import PoolInvalid, validate_pool

VOCAB = Vocabulary(categories=("Dress", "Skirt", "Coat", "Top"), colors=("Black", "Beige", "Red"))


def pool() -> list[dict]:
    outfits = []
    for i in range(20):
        outfits.append({
            "title": f"{['Black', 'Beige', 'Red'][i % 3]} Silk Piece {chr(65 + i)}",
            "daypart": "Daytime" if i < 10 else "NightOut",
            "category": ["Dress", "Skirt", "Coat", "Top"][i % 4], "color": ["Black", "Beige", "Red"][i % 3],
            "pieces": ["hero", "loafers"], "vibe": 0.5, "trend": 0.25, "dare": 1, "reason": "Because it works.",
        })
    return outfits


def test_a_valid_pool_is_normalized():
    data = pool()
    data[0]["title"] = "  Black   Silk Piece A "
    out = validate_pool({"outfits": data}, VOCAB)
    assert len(out) == 20 and out[0]["title"] == "Black Silk Piece A" and out[0]["dare"] == 1.0


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.pop(), "expected 20 outfits (10 Daytime, 10 NightOut), got 19 (10 Daytime, 9 NightOut)"),
    (lambda p: p[3].update(color="Mauve"), "outfit 4: color 'Mauve' is not in the color enum"),
    (lambda p: p[3].update(category="Cape"), "outfit 4: category 'Cape' is not in the category enum"),
    (lambda p: p[5].update(vibe=True), "outfit 6: vibe must be a number between 0 and 1, got True"),
    (lambda p: p[5].update(trend=1.5), "outfit 6: trend must be a number between 0 and 1, got 1.5"),
    (lambda p: p[7].update(title="Outfit 8"), 'outfit 8: title "Outfit 8" is generic; name the hero piece'),
    (lambda p: p[8].update(title=p[2]["title"].upper()), 'outfit 9: duplicate title'),
    (lambda p: p[1].update(pieces=["only one"]), "outfit 2: pieces must be 2 to 6 non-empty strings"),
    (lambda p: p[1].update(reason="two\nlines"), "outfit 2: reason must be one line of at most 300 characters"),
    (lambda p: p[1].pop("reason"), "outfit 2: missing ['reason']"),
    (lambda p: p[1].update(extra=1), "outfit 2: unexpected ['extra']"),
])
def test_each_problem_is_named(mutate, message):
    data = copy.deepcopy(pool())
    mutate(data)
    with pytest.raises(PoolInvalid) as caught:
        validate_pool(data, VOCAB)
    assert message in str(caught.value)


def test_invalid_json_and_wrong_envelope():
    with pytest.raises(PoolInvalid, match="response is not valid JSON"):
        validate_pool('{"outfits": [', VOCAB)
    with pytest.raises(PoolInvalid, match='single key "outfits"'):
        validate_pool({"pool": []}, VOCAB)


def test_retry_after_seconds_milliseconds_and_http_dates():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "100000"}) == 60.0  # capped
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= retry_after({"retry-after": future}) <= 30
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None


def test_non_retryable_errors_fail_at_once_and_are_recorded():
    attempts: list[Attempt] = []
    calls = []

    def boom():
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(Failure, match="KeyError"):
        call_with_retries(boom, kind="chat", provider="offline", model="m", attempts=attempts, max_retries=3,
                          sleep=lambda s: None)
    assert len(calls) == 1
    assert [(a.attempt, a.status) for a in attempts] == [(1, "error")]


def test_success_records_usage():
    attempts: list[Attempt] = []
    value = call_with_retries(lambda: ("ok", Usage(10, 20)), kind="embedding", provider="openai", model="m",
                              attempts=attempts, max_retries=1)
    assert value == "ok"
    assert [(a.kind, a.attempt, a.status, a.usage.prompt_tokens, a.usage.completion_tokens) for a in attempts] == [
        ("embedding", 1, "ok", 10, 20)]
