"""Named queries, loaded from `db/queries.sql` (procrastinate's pattern).

Python never assembles SQL: each query is written once in that file under a
`-- name: <name>` header and called by name with bound parameters.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

QUERIES_FILE = Path(__file__).with_name("queries.sql")
_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def load() -> dict[str, str]:
    text = QUERIES_FILE.read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {QUERIES_FILE}")
        queries[name] = body.strip().rstrip(";")
    return queries


def query(name: str) -> str:
    try:
        return load()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {QUERIES_FILE}") from None
