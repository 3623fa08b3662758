"""Pure-Python pieces of the LLM path: the prompt, validation rules and Retry-After parsing."""

from __future__ import annotations

import copy
import email.utils
import json
import time
from dataclasses import replace
from datetime import date

import pytest

from batch.llm import (
    AVOID_TITLES_PREFIX,
    Failure,
    build_messages,
    call_with_retries,
    retry_after,
)
from batch.titles import MAX_PROMPT_TITLES
from batch.types import Attempt, Cluster, Usage, Vocabulary
from batch.validate import PoolInvalid, validate_pool

VOCAB = Vocabulary(categories=("Dress", "Skirt", "Coat", "Top"), colors=("Black", "Beige", "Red"))
CLUSTER = Cluster(
    pool_date=date(2026, 4, 20),
    cluster_id="20260420_Minimal_Sunny",
    archetype="Minimal",
    archetype_adjective="minimalist",
    archetype_keywords=("clean",),
    weather="Sunny",
    weather_adjective="sun-ready",
    weather_keywords=("light",),
    members=12,
)


def pool() -> list[dict]:
    outfits = []
    for i in range(20):
        outfits.append(
            {
                "title": f"{['Black', 'Beige', 'Red'][i % 3]} Silk Piece {chr(65 + i)}",
                "daypart": "Daytime" if i < 10 else "NightOut",
                "category": ["Dress", "Skirt", "Coat", "Top"][i % 4],
                "color": ["Black", "Beige", "Red"][i % 3],
                "pieces": ["hero", "loafers"],
                "vibe": 0.5,
                "trend": 0.25,
                "dare": 1,
                "reason": "Because it works.",
            }
        )
    return outfits


def test_a_valid_pool_is_normalized():
    data = pool()
    data[0]["title"] = "  Black   Silk Piece A "
    out = validate_pool({"outfits": data}, VOCAB)
    assert len(out) == 20 and out[0]["title"] == "Black Silk Piece A" and out[0]["dare"] == 1.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop(), "expected 20 outfits (10 Daytime, 10 NightOut), got 19 (10 Daytime, 9 NightOut)"),
        (lambda p: p[3].update(color="Mauve"), "outfit 4: color 'Mauve' is not in the color enum"),
        (lambda p: p[3].update(category="Cape"), "outfit 4: category 'Cape' is not in the category enum"),
        (lambda p: p[5].update(vibe=True), "outfit 6: vibe must be a number between 0 and 1, got True"),
        (lambda p: p[5].update(trend=1.5), "outfit 6: trend must be a number between 0 and 1, got 1.5"),
        (lambda p: p[7].update(title="Outfit 8"), 'outfit 8: title "Outfit 8" is generic; name the hero piece'),
        (lambda p: p[8].update(title=p[2]["title"].upper()), "outfit 9: duplicate title"),
        (lambda p: p[1].update(pieces=["only one"]), "outfit 2: pieces must be 2 to 6 non-empty strings"),
        (lambda p: p[1].update(reason="two\nlines"), "outfit 2: reason must be one line of at most 300 characters"),
        (lambda p: p[1].pop("reason"), "outfit 2: missing ['reason']"),
        (lambda p: p[1].update(extra=1), "outfit 2: unexpected ['extra']"),
    ],
)
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


def test_a_title_taken_by_another_pool_is_rejected_naming_it():
    data = pool()
    data[4]["title"], data[11]["title"] = "  red  SILK piece e", "Beige Silk Piece Z"
    avoid = ("Red Silk Piece E", "Beige Silk Piece Z", "Black Wool Coat")
    with pytest.raises(PoolInvalid) as caught:
        validate_pool(data, VOCAB, avoid)
    assert str(caught.value) == (
        'titles already taken by other pools within 3 days: "Red Silk Piece E" (outfit 5), '
        '"Beige Silk Piece Z" (outfit 12); every title must be new'
    )
    assert len(validate_pool(pool(), VOCAB, avoid)) == 20  # no repeat: valid
    assert len(validate_pool(data, VOCAB)) == 20  # nothing to avoid: valid


def test_problems_name_outfits_by_their_number_in_the_answer():
    data = pool()
    data[0]["color"] = "Mauve"  # outfit 1 invalid, so not among the checked
    data[8]["title"] = data[2]["title"]
    data[9]["title"] = "Black Wool Coat"
    with pytest.raises(PoolInvalid) as caught:
        validate_pool(data, VOCAB, ["Black Wool Coat"])
    assert str(caught.value) == (
        "outfit 1: color 'Mauve' is not in the color enum; "
        f'outfit 9: duplicate title "{data[2]["title"]}" (also outfit 3); '
        'titles already taken by other pools within 3 days: "Black Wool Coat" (outfit 10); every title must be new'
    )


def test_the_prompt_lists_the_titles_to_avoid_only_when_there_are_some():
    def user_text(cluster: Cluster) -> str:
        return build_messages(cluster, VOCAB)[1]["content"]

    assert "Do not use any of these titles" not in user_text(CLUSTER)
    titles = ("Beige Linen Midi Skirt", 'The "Quoted" Coat', "Black Silk Slip Dress")
    text = user_text(replace(CLUSTER, avoid_titles=titles))
    line = next(ln for ln in text.splitlines() if ln.startswith(AVOID_TITLES_PREFIX))
    assert line == (
        "Do not use any of these titles, taken by other pools of this date or within 3 days: "
        '"Beige Linen Midi Skirt", '
        '"The \\"Quoted\\" Coat", "Black Silk Slip Dress".'
    )
    assert json.loads("[" + line[len(AVOID_TITLES_PREFIX) : -1] + "]") == list(titles)
    feedback = build_messages(replace(CLUSTER, avoid_titles=titles), VOCAB, "outfit 3: bad")[1]["content"]
    assert feedback.splitlines()[-3] == line  # the list, then the rejection


def test_the_prompt_lists_at_most_max_prompt_titles_the_likeliest_first():
    titles = tuple(f"Black Silk Piece {i:03}" for i in range(MAX_PROMPT_TITLES + 40))
    text = build_messages(replace(CLUSTER, avoid_titles=titles), VOCAB)[1]["content"]
    line = next(ln for ln in text.splitlines() if ln.startswith(AVOID_TITLES_PREFIX))
    assert json.loads("[" + line[len(AVOID_TITLES_PREFIX) : -1] + "]") == list(titles[:MAX_PROMPT_TITLES])
    assert "40 more titles are taken too" in text


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
        call_with_retries(
            boom, kind="chat", provider="offline", model="m", attempts=attempts, max_retries=3, sleep=lambda s: None
        )
    assert len(calls) == 1
    assert [(a.attempt, a.status) for a in attempts] == [(1, "error")]


def test_success_records_usage():
    attempts: list[Attempt] = []
    value = call_with_retries(
        lambda: ("ok", Usage(10, 20)), kind="embedding", provider="openai", model="m", attempts=attempts, max_retries=1
    )
    assert value == "ok"
    assert [(a.kind, a.attempt, a.status, a.usage.prompt_tokens, a.usage.completion_tokens) for a in attempts] == [
        ("embedding", 1, "ok", 10, 20)
    ]
