"""The fake OpenAI server, driven through the real `openai` client over HTTP."""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import openai
import pytest

from batch.types import Vocabulary, pool_json_schema
from tests.fake_openai import FakeOpenAI

CATEGORIES = (
    "Dress",
    "Jumpsuit",
    "Suit",
    "Top",
    "Shirt",
    "Knitwear",
    "Skirt",
    "Trousers",
    "Jeans",
    "Shorts",
    "Blazer",
    "Jacket",
    "Coat",
    "Activewear",
)
COLORS = (
    "Black",
    "White",
    "Ivory",
    "Beige",
    "Camel",
    "Brown",
    "Grey",
    "Navy",
    "Blue",
    "Green",
    "Olive",
    "Red",
    "Burgundy",
    "Pink",
    "Yellow",
    "Orange",
    "Purple",
    "Lavender",
    "Silver",
    "Gold",
)
VOCAB = Vocabulary(categories=CATEGORIES, colors=COLORS)
KEYS = {"title", "daypart", "category", "color", "pieces", "vibe", "trend", "dare", "reason"}
SUNNY = "20260420_Minimal_Sunny"
RAINY = "20260420_Edgy_Rainy"


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


@pytest.fixture
def client(server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=5.0)


def chat(client: openai.OpenAI, cluster_id: str, vocabulary: Vocabulary = VOCAB):
    return client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "You are a stylist. Answer with JSON only."},
            {"role": "user", "content": f"Cluster {cluster_id}: write 20 outfits for today."},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "outfit_pool", "strict": True, "schema": pool_json_schema(vocabulary)},
        },
    )


def outfits_of(completion) -> list[dict]:
    return json.loads(completion.choices[0].message.content)["outfits"]


def test_ok_returns_a_valid_pool_from_the_request_enums(server: FakeOpenAI, client: openai.OpenAI):
    completion = chat(client, SUNNY)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.completion_tokens > 100
    outfits = outfits_of(completion)
    assert len(outfits) == 20
    assert Counter(o["daypart"] for o in outfits) == {"Daytime": 10, "NightOut": 10}
    assert len({o["title"] for o in outfits}) == 20
    for o in outfits:
        assert set(o) == KEYS
        assert o["category"] in CATEGORIES and o["color"] in COLORS
        assert 2 <= len(o["pieces"]) <= 6 and all(isinstance(p, str) for p in o["pieces"])
        assert all(0.0 <= o[k] <= 1.0 for k in ("vibe", "trend", "dare"))
        assert o["reason"] and "\n" not in o["reason"]
    # deterministic per prompt, different across prompts
    assert outfits_of(chat(client, SUNNY)) == outfits
    assert outfits_of(chat(client, RAINY)) != outfits
    assert [r.behaviour for r in server.chat_requests()] == ["ok", "ok", "ok"]


def test_ok_uses_only_the_enums_sent(client: openai.OpenAI):
    small = Vocabulary(categories=("Dress", "Coat", "Skirt"), colors=("Navy", "Camel"))
    outfits = outfits_of(chat(client, SUNNY, small))
    assert len(outfits) == 20 and len({o["title"] for o in outfits}) == 20
    assert {o["category"] for o in outfits} <= {"Dress", "Coat", "Skirt"}
    assert {o["color"] for o in outfits} <= {"Navy", "Camel"}


def test_429_raises_rate_limit_error_with_retry_after(server: FakeOpenAI, client: openai.OpenAI):
    server.retry_after = 0.25
    server.plan("429")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, SUNNY)
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert float(caught.value.response.headers["retry-after"]) == 0.25
    assert len(outfits_of(chat(client, SUNNY))) == 20  # the plan was consumed
    assert [(r.behaviour, r.status) for r in server.chat_requests()] == [("429", 429), ("ok", 200)]


def test_500_raises_internal_server_error(server: FakeOpenAI, client: openai.OpenAI):
    server.plan("500")
    with pytest.raises(openai.InternalServerError) as caught:
        chat(client, SUNNY)
    assert caught.value.status_code == 500


def test_timeout_fires_on_the_client_and_does_not_block_shutdown():
    with FakeOpenAI(slow_seconds=3) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=0.5)
        server.plan("timeout")
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            chat(client, SUNNY)
        assert time.monotonic() - started < 2.0
        assert [r.behaviour for r in server.requests] == ["timeout"]
        closing = time.monotonic()
    assert time.monotonic() - closing < 1.0


def test_invalid_json_content_does_not_parse(client: openai.OpenAI, server: FakeOpenAI):
    server.plan("invalid_json")
    content = chat(client, SUNNY).choices[0].message.content
    assert content.startswith('{"outfits": [')
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_wrong_count_bad_enum_and_duplicate_titles(server: FakeOpenAI, client: openai.OpenAI):
    server.plan("wrong_count", "bad_enum", "duplicate_titles")
    wrong = outfits_of(chat(client, SUNNY))
    assert len(wrong) == 19
    assert Counter(o["daypart"] for o in wrong) == {"Daytime": 9, "NightOut": 10}

    bad = outfits_of(chat(client, SUNNY))
    assert len(bad) == 20
    assert [o["color"] for o in bad if o["color"] not in COLORS] == ["Mauve"]

    dup = outfits_of(chat(client, SUNNY))
    assert len(dup) == 20 and len({o["title"] for o in dup}) == 19
    assert [r.behaviour for r in server.chat_requests()] == ["wrong_count", "bad_enum", "duplicate_titles"]


def test_plan_with_match_only_affects_matching_prompts(server: FakeOpenAI, client: openai.OpenAI):
    server.plan("500", match=SUNNY)
    assert len(outfits_of(chat(client, RAINY))) == 20
    with pytest.raises(openai.InternalServerError):
        chat(client, SUNNY)
    assert len(outfits_of(chat(client, SUNNY))) == 20
    assert [(SUNNY in r.user_text, r.behaviour) for r in server.chat_requests()] == [
        (False, "ok"),
        (True, "500"),
        (True, "ok"),
    ]


def test_matched_plans_beat_unmatched_plans_and_always_applies_afterwards(server: FakeOpenAI, client: openai.OpenAI):
    server.plan("429")
    server.plan("500", match=SUNNY)
    server.always("wrong_count", match=SUNNY)
    with pytest.raises(openai.InternalServerError):
        chat(client, SUNNY)
    with pytest.raises(openai.RateLimitError):
        chat(client, SUNNY)
    assert len(outfits_of(chat(client, SUNNY))) == 19
    assert len(outfits_of(chat(client, SUNNY))) == 19
    assert len(outfits_of(chat(client, RAINY))) == 20

    server.reset()
    assert server.requests == []
    assert len(outfits_of(chat(client, SUNNY))) == 20


def test_unknown_behaviour_is_rejected(server: FakeOpenAI):
    with pytest.raises(ValueError):
        server.plan("teapot")
    with pytest.raises(ValueError):
        server.embedding_plan("bad_enum")


def test_embeddings_are_deterministic_unit_vectors(server: FakeOpenAI, client: openai.OpenAI):
    texts = ["beige silk midi skirt", "black leather biker jacket", "navy wool overcoat"]
    first = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=32)
    assert [d.index for d in first.data] == [0, 1, 2]
    vectors = [d.embedding for d in first.data]
    for v in vectors:
        assert len(v) == 32
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-5)
    assert len({tuple(v) for v in vectors}) == 3
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0

    again = client.embeddings.create(model="text-embedding-3-small", input=[texts[2], texts[0]], dimensions=32)
    assert [d.embedding for d in again.data] == [vectors[2], vectors[0]]

    floats = client.embeddings.create(
        model="text-embedding-3-small", input=texts[1], dimensions=32, encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(vectors[1], abs=1e-6)

    full = client.embeddings.create(model="text-embedding-3-small", input="x")
    assert len(full.data[0].embedding) == 1536

    sent = [r.body.get("encoding_format") for r in server.embedding_requests()]
    assert sent == ["base64", "base64", "float", "base64"]  # the client asks for base64 by default


def test_embedding_plan(server: FakeOpenAI, client: openai.OpenAI):
    server.embedding_plan("429", "500")
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=["a"], dimensions=32)
    assert caught.value.response.headers["retry-after"] == "0.05"
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input=["a"], dimensions=32)
    ok = client.embeddings.create(model="text-embedding-3-small", input=["a"], dimensions=32)
    assert len(ok.data[0].embedding) == 32
    assert [r.behaviour for r in server.embedding_requests()] == ["429", "500", "ok"]
    assert server.chat_requests() == []


def test_requests_are_recorded(server: FakeOpenAI, client: openai.OpenAI):
    server.plan("bad_enum")
    chat(client, SUNNY)
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=32)
    records = server.requests
    assert [(r.path, r.behaviour, r.status) for r in records] == [
        ("/v1/chat/completions", "bad_enum", 200),
        ("/v1/embeddings", "ok", 200),
    ]
    chat_record = server.chat_requests()[0]
    assert chat_record.headers["authorization"] == "Bearer test-key"
    assert chat_record.body["model"] == "gpt-test"
    assert chat_record.body["response_format"]["json_schema"]["name"] == "outfit_pool"
    assert SUNNY in chat_record.user_text
    assert server.embedding_requests()[0].body["input"] == ["a", "b"]
    assert server.embedding_requests()[0].body["dimensions"] == 32


def test_unknown_path_is_404(server: FakeOpenAI, client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.list()
    assert caught.value.code == "unknown_url"
    assert server.requests == []
