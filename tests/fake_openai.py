"""A local OpenAI-compatible HTTP server for tests.

`FakeOpenAI` serves `/v1/chat/completions` and `/v1/embeddings` on
127.0.0.1 (ephemeral port) so that tests drive the *real* `openai` Python
client end to end, through real HTTP, instead of mocking it:

    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        server.plan("429", "ok", match="20260420_Minimal_Sunny")
        ...

Chat answers are outfit pools in the shape of `batch.types.pool_json_schema()`:
deterministic (a blake2b digest of the user message seeds every choice),
built only from the category/color enums found in the request's
`response_format` schema, and, like a model that follows its prompt, never
using a title the prompt's "Do not use any of these titles, taken by other
pools of this date or within 3 days: ..." line lists, nor one of its own
earlier valid answers (a prompt lists at most 150 taken titles, and titles are
unique across all pools; `reset()` keeps them, as the database keeps the pools
they became).  On demand the server misbehaves, one behaviour per
request:

    "ok"                a valid pool: 20 outfits, 10 Daytime + 10 NightOut
    "429"               rate limited, with a Retry-After header (`retry_after`)
    "500"               internal server error
    "timeout"           waits `slow_seconds`, then answers like "ok"
    "invalid_json"      200, but the message content is truncated JSON
    "wrong_count"       200, a pool of 19 outfits (9 Daytime + 10 NightOut)
    "bad_enum"          200, one outfit's color is "Mauve" (not in the enum)
    "duplicate_titles"  200, two outfits share a title
    "repeat_title"      200, outfit 5's title is the prompt's first title to avoid,
                        in lower case and padded with spaces (like "ok" when
                        the prompt lists none)

Behaviours are queued with `plan()` (consumed one per request, optionally
only by requests whose user message contains `match`), made permanent with
`always()`, and default to "ok".  Embeddings ("ok", "429", "500", "timeout")
are queued with `embedding_plan()`; their vectors are deterministic per text,
unit length, `dimensions` long, and base64-encoded little-endian float32 when
the client asks for `encoding_format: "base64"` (which the openai client does
by default).  Every request is recorded (`requests`, `chat_requests()`,
`embedding_requests()`).

Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "Recorded", "CHAT_BEHAVIOURS", "EMBEDDING_BEHAVIOURS", "avoided_titles"]

CHAT_BEHAVIOURS = (
    "ok",
    "429",
    "500",
    "timeout",
    "invalid_json",
    "wrong_count",
    "bad_enum",
    "duplicate_titles",
    "repeat_title",
)
EMBEDDING_BEHAVIOURS = ("ok", "429", "500", "timeout")

# The prompt line batch/llm.py writes: JSON strings separated by ", ", then a period.
AVOID_TITLES_PREFIX = "Do not use any of these titles, taken by other pools of this date or within 3 days: "

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"

# Used only when a chat request carries no response_format schema.
_FALLBACK_CATEGORIES = (
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
_FALLBACK_COLORS = (
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

_MATERIALS = (
    "Linen",
    "Silk",
    "Wool",
    "Cotton",
    "Denim",
    "Leather",
    "Satin",
    "Cashmere",
    "Tweed",
    "Jersey",
    "Velvet",
    "Crepe",
    "Poplin",
    "Suede",
)
_NOUNS = {
    "Dress": ("Midi Dress", "Slip Dress", "Wrap Dress", "Shirt Dress"),
    "Jumpsuit": ("Jumpsuit", "Boilersuit", "Wide-Leg Jumpsuit"),
    "Suit": ("Two-Piece Suit", "Trouser Suit", "Skirt Suit"),
    "Top": ("Camisole", "Tank Top", "Bodysuit", "Tee"),
    "Shirt": ("Button-Down Shirt", "Oversized Shirt", "Blouse"),
    "Knitwear": ("Crewneck Sweater", "Cardigan", "Turtleneck"),
    "Skirt": ("Midi Skirt", "Pleated Skirt", "Pencil Skirt", "Mini Skirt"),
    "Trousers": ("Wide-Leg Trousers", "Cigarette Trousers", "Pleated Trousers"),
    "Jeans": ("Straight Jeans", "Barrel Jeans", "Flared Jeans"),
    "Shorts": ("Tailored Shorts", "Bermuda Shorts", "Cycling Shorts"),
    "Blazer": ("Blazer", "Double-Breasted Blazer", "Cropped Blazer"),
    "Jacket": ("Bomber Jacket", "Biker Jacket", "Chore Jacket", "Shacket"),
    "Coat": ("Trench Coat", "Overcoat", "Car Coat"),
    "Activewear": ("Track Set", "Zip Training Top", "Running Set"),
}
_EXTRAS = {
    "Daytime": (
        "White Leather Sneakers",
        "Canvas Tote",
        "Tortoiseshell Sunglasses",
        "Leather Loafers",
        "Silk Scarf",
        "Minimal Watch",
        "Crossbody Bag",
        "Ballet Flats",
        "Baseball Cap",
        "Gold Stud Earrings",
    ),
    "NightOut": (
        "Strappy Heeled Sandals",
        "Beaded Clutch",
        "Statement Earrings",
        "Pointed Ankle Boots",
        "Cocktail Ring",
        "Satin Mules",
        "Chain Shoulder Bag",
        "Sheer Tights",
        "Layered Necklaces",
        "Red Lip",
    ),
}
_REASONS = {
    "Daytime": "Easy {color} {noun} that keeps the day polished without trying too hard.",
    "NightOut": "A {color} {noun} with enough edge to carry the evening.",
}


@dataclass
class Recorded:
    """One request the server received (status is what it answered, or will answer)."""

    path: str
    body: dict
    headers: dict  # lower-cased header names
    behaviour: str
    status: int

    @property
    def user_text(self) -> str:
        return _user_text(self.body)


# --------------------------------------------------------------------------- helpers


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _user_text(body: dict) -> str:
    messages = body.get("messages") or []
    return "\n".join(
        _content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"
    )


def _all_message_text(body: dict) -> str:
    messages = body.get("messages") or []
    return "".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))


def avoided_titles(user_text: str) -> list[str]:
    """The titles the prompt says not to repeat ([] when it lists none)."""
    for line in user_text.splitlines():
        if line.startswith(AVOID_TITLES_PREFIX) and line.endswith("."):
            titles = json.loads("[" + line[len(AVOID_TITLES_PREFIX) : -1] + "]")
            return [t for t in titles if isinstance(t, str)]
    return []


def _schema_enum(body: dict, key: str) -> tuple[str, ...] | None:
    try:
        enum = body["response_format"]["json_schema"]["schema"]["properties"]["outfits"]["items"]["properties"][key][
            "enum"
        ]
    except (KeyError, TypeError):
        return None
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return tuple(enum)
    return None


class _Draws:
    """Deterministic pseudo-random draws from a seed (blake2b in counter mode)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._n = 0

    def next_int(self) -> int:
        digest = hashlib.blake2b(self._seed + self._n.to_bytes(8, "little"), digest_size=8).digest()
        self._n += 1
        return int.from_bytes(digest, "little")

    def unit(self) -> float:
        return self.next_int() / 2.0**64

    def pick(self, seq):
        return seq[self.next_int() % len(seq)]


def make_pool(
    user_text: str, categories: tuple[str, ...], colors: tuple[str, ...], answered: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """A valid, deterministic pool: 20 outfits (10 Daytime, then 10 NightOut), distinct titles,
    none of them one the prompt says to avoid, nor one of `answered` (the server's earlier answers:
    titles are unique across pools, and a prompt lists only the likeliest repeats)."""
    draws = _Draws(hashlib.blake2b(user_text.encode("utf-8"), digest_size=32).digest())
    outfits: list[dict[str, Any]] = []
    titles: set[str] = {" ".join(t.split()).casefold() for t in avoided_titles(user_text)} | answered
    start = draws.next_int() % len(categories)
    for i in range(20):
        daypart = "Daytime" if i < 10 else "NightOut"
        category = categories[(start + i) % len(categories)]
        nouns = _NOUNS.get(category, (category,))
        for _ in range(64):
            color, material, noun = draws.pick(colors), draws.pick(_MATERIALS), draws.pick(nouns)
            title = f"{color} {material} {noun}"
            if title.casefold() not in titles:
                break
        else:  # pragma: no cover - tiny vocabularies only
            title = f"{title} No. {i + 1}"
        titles.add(title.casefold())
        extras = list(_EXTRAS[daypart])
        pieces = [title]
        for _ in range(1 + draws.next_int() % 5):  # 1..5 extras -> 2..6 pieces
            pieces.append(extras.pop(draws.next_int() % len(extras)))
        low = 0.0 if daypart == "Daytime" else 0.3
        outfits.append(
            {
                "title": title,
                "daypart": daypart,
                "category": category,
                "color": color,
                "pieces": pieces,
                "vibe": round(low + (1.0 - low) * draws.unit(), 2),
                "trend": round(draws.unit(), 2),
                "dare": round(low + (1.0 - low) * draws.unit(), 2),
                "reason": _REASONS[daypart].format(color=color.lower(), noun=f"{material.lower()} {noun.lower()}"),
            }
        )
    return outfits


def _chat_content(behaviour: str, body: dict, answered: frozenset[str] = frozenset()) -> str:
    categories = _schema_enum(body, "category") or _FALLBACK_CATEGORIES
    colors = _schema_enum(body, "color") or _FALLBACK_COLORS
    outfits = make_pool(_user_text(body), categories, colors, answered)
    if behaviour == "wrong_count":
        del outfits[9]  # 9 Daytime + 10 NightOut
    elif behaviour == "bad_enum":
        bad = "Mauve" if "Mauve" not in colors else "Mauvish"
        outfits[3]["color"] = bad
    elif behaviour == "duplicate_titles":
        outfits[12]["title"] = outfits[2]["title"]
        outfits[12]["pieces"][0] = outfits[2]["title"]
    elif behaviour == "repeat_title" and avoided_titles(_user_text(body)):
        outfits[4]["title"] = f"  {avoided_titles(_user_text(body))[0].lower()} "
        outfits[4]["pieces"][0] = outfits[4]["title"].strip()
    content = json.dumps({"outfits": outfits})
    if behaviour == "invalid_json":
        content = content[: len(content) // 2]  # truncated mid-document
    return content


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        if raw and all(isinstance(v, int) for v in raw):  # one token array
            return [json.dumps(raw)]
        return [v if isinstance(v, str) else json.dumps(v) for v in raw]
    return [json.dumps(raw)]


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector for `text` (float32-representable)."""
    draws = _Draws(b"embedding\x00" + text.encode("utf-8"))
    vec = [draws.unit() * 2.0 - 1.0 for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vec]


def _error(message: str, type_: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins handler threads (they exit quickly)
    fake: "FakeOpenAI"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    # -- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{self.server.fake._next_id():06d}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            pass  # the client gave up (e.g. its timeout fired)

    # -- routes

    def do_GET(self) -> None:  # noqa: N802
        self._not_found()

    def do_DELETE(self) -> None:  # noqa: N802
        self._not_found()

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        if path not in (CHAT_PATH, EMBEDDINGS_PATH):
            self._not_found(path)
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError as exc:
            self._send(
                400, _error(f"We could not parse the JSON body of your request: {exc}", "invalid_request_error", None)
            )
            return
        fake = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path == CHAT_PATH:
            behaviour = fake._take_chat(_user_text(body))
        else:
            behaviour = fake._take_embedding()
        status = {"429": 429, "500": 500}.get(behaviour, 200)
        fake._record(Recorded(path=path, body=body, headers=headers, behaviour=behaviour, status=status))

        if behaviour == "429":
            self._send(
                429,
                _error("Rate limit reached", "requests", "rate_limit_exceeded"),
                {"Retry-After": _seconds(fake.retry_after)},
            )
            return
        if behaviour == "500":
            self._send(
                500,
                _error(
                    "The server had an error while processing your request. Sorry about that!", "server_error", None
                ),
            )
            return
        if behaviour == "timeout":
            if fake._closing.wait(max(0.0, float(fake.slow_seconds))):
                return  # shutting down: don't bother answering
        if path == CHAT_PATH:
            self._send(200, fake._chat_response(behaviour, body))
        else:
            self._send(200, fake._embedding_response(body))

    def _not_found(self, path: str | None = None) -> None:
        path = path or self.path.split("?", 1)[0]
        self._send(404, _error(f"Invalid URL ({self.command} {path})", "invalid_request_error", "unknown_url"))


def _seconds(value: float) -> str:
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return text or "0"


class FakeOpenAI:
    """Local OpenAI-compatible server; use as a context manager.

    Public API:
      base_url                      "http://127.0.0.1:<port>/v1"
      requests                      list[Recorded] (a copy), in arrival order
      chat_requests(), embedding_requests()
      plan(*behaviours, match=None) queue chat behaviours (matched plans first)
      always(behaviour, match=None) permanent chat behaviour once plans run out
      embedding_plan(*behaviours)   queue embedding behaviours
      reset()                       forget records, plans and always-rules (not the answers)
      retry_after (0.05 s), slow_seconds (5.0 s), default ("ok")
    """

    def __init__(self, *, retry_after: float = 0.05, slow_seconds: float = 5.0) -> None:
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.default = "ok"
        self._lock = threading.Lock()
        self._records: list[Recorded] = []
        self._plans: dict[str | None, deque[str]] = {}
        self._always: dict[str | None, str] = {}
        self._embedding_plan: deque[str] = deque()
        self._ids = 0
        self._answered: set[str] = set()  # title keys of the valid pools answered so far
        self._valid_answers: dict[str, str] = {}  # user text -> its valid pool
        self._closing = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> "FakeOpenAI":
        if self._httpd is not None:
            return self
        self._closing.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._closing.set()  # wakes handlers sleeping for "timeout"
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- records

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._records)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == CHAT_PATH]

    def embedding_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == EMBEDDINGS_PATH]

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._plans.clear()
            self._always.clear()
            self._embedding_plan.clear()
            # the answers are kept, as the database keeps the pools they became

    # -- plans

    def plan(self, *behaviours: str, match: str | None = None) -> None:
        """Queue behaviours, one per matching chat request, in order."""
        _check(behaviours, CHAT_BEHAVIOURS)
        with self._lock:
            self._plans.setdefault(match, deque()).extend(behaviours)

    def always(self, behaviour: str, match: str | None = None) -> None:
        """Apply `behaviour` to every matching chat request once queued plans are exhausted."""
        _check((behaviour,), CHAT_BEHAVIOURS)
        with self._lock:
            self._always[match] = behaviour

    def embedding_plan(self, *behaviours: str) -> None:
        _check(behaviours, EMBEDDING_BEHAVIOURS)
        with self._lock:
            self._embedding_plan.extend(behaviours)

    def _take_chat(self, user_text: str) -> str:
        with self._lock:
            for match, queue in self._plans.items():
                if match is not None and queue and match in user_text:
                    return queue.popleft()
            queue = self._plans.get(None)
            if queue:
                return queue.popleft()
            for match, behaviour in self._always.items():
                if match is not None and match in user_text:
                    return behaviour
            return self._always.get(None, self.default)

    def _take_embedding(self) -> str:
        with self._lock:
            return self._embedding_plan.popleft() if self._embedding_plan else "ok"

    def _record(self, record: Recorded) -> None:
        with self._lock:
            self._records.append(record)

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    # -- responses

    def _chat_response(self, behaviour: str, body: dict) -> dict:
        valid = behaviour in ("ok", "timeout")
        with self._lock:
            answered = frozenset(self._answered)
            content = self._valid_answers.get(_user_text(body)) if valid else None
        if content is None:  # the same prompt gets the same pool again
            content = _chat_content("ok" if valid else behaviour, body, answered)
        if valid:
            with self._lock:
                self._valid_answers.setdefault(_user_text(body), content)
                self._answered |= {" ".join(o["title"].split()).casefold() for o in json.loads(content)["outfits"]}
        prompt_tokens = max(1, len(_all_message_text(body)) // 4)
        completion_tokens = max(1, len(content) // 4)
        digest = hashlib.blake2b(f"{self._next_id()}:{_user_text(body)}".encode("utf-8"), digest_size=12).hexdigest()
        return {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _embedding_response(self, body: dict) -> dict:
        texts = _embedding_inputs(body.get("input"))
        dimensions = int(body.get("dimensions") or 1536)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = embedding_vector(text, dimensions)
            encoded: Any = vec
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(max(1, len(t) // 4) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _check(behaviours: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    for b in behaviours:
        if b not in allowed:
            raise ValueError(f"unknown behaviour {b!r}; expected one of {', '.join(allowed)}")
