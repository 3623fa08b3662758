"""The offline text embedder: signed feature hashing into 32 dimensions.

Each word is hashed (BLAKE2b) to a few signed coordinates; a text's vector is
the normalized sum of its words' vectors.  Texts that share words therefore
lie close together (cosine), which is all the feed's scoring needs, and the
result is identical on every machine and run.  User taste vectors are built
in the same space, so cosine(taste, outfit) means something from day one.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

DIMENSIONS = 32
_PROBES = 4  # signed coordinates per word
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words; hyphenated words stay whole ("rain-ready")."""
    return _WORD.findall(text.lower())


@lru_cache(maxsize=65536)
def word_vector(word: str) -> np.ndarray:
    digest = hashlib.blake2b(word.encode(), digest_size=2 * _PROBES, person=b"ootd-embed").digest()
    vec = np.zeros(DIMENSIONS, dtype=np.float32)
    for i in range(_PROBES):
        index, sign_byte = digest[2 * i], digest[2 * i + 1]
        vec[index % DIMENSIONS] += 1.0 if sign_byte & 1 else -1.0
    vec.setflags(write=False)
    return vec


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def embed_words(tokens: Iterable[str], weights: Sequence[float] | None = None) -> np.ndarray:
    """Unit vector of a bag of words (optionally weighted)."""
    total = np.zeros(DIMENSIONS, dtype=np.float32)
    for i, token in enumerate(tokens):
        total += word_vector(token) * (1.0 if weights is None else weights[i])
    return normalize(total)


def embed_text(text: str) -> np.ndarray:
    return embed_words(words(text))


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """One unit vector per text, shape (len(texts), 32)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([embed_text(t) for t in texts])


def vector_literal(vec: np.ndarray) -> str:
    """pgvector's text form, 5 significant digits (plenty for cosine)."""
    return "[" + ",".join(f"{x:.5g}" for x in vec.tolist()) + "]"


_MILLI = [f"{k / 1000:.3f}".rstrip("0").rstrip(".") for k in range(-1000, 1001)]


def vector_literals(matrix: np.ndarray) -> list[str]:
    """pgvector text forms of unit vectors with 3 decimals, by table lookup (fast).

    Rounding unit-vector components to 1e-3 moves a cosine by well under 0.01,
    far below the gaps the feed's scoring cares about.
    """
    milli = (np.clip(np.rint(matrix * 1000), -1000, 1000).astype(np.int32) + 1000).tolist()
    table = _MILLI
    return ["[" + ",".join([table[k] for k in row]) + "]" for row in milli]
