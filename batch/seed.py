"""Synthetic users for demos, tests and benchmarks (`ootd seed`).

Deterministic: user k's attributes depend only on (seed, k), generated in
fixed chunks of CHUNK ids with a NumPy generator seeded by (seed, chunk), so
`--users 20000` after `--users 10000` adds users 10001..20000 and leaves the
first ten thousand exactly as they were.  Re-running never duplicates: ids
that already exist are skipped.

Seeding runs in batches of BATCH ids (by default; ten chunks), each its own
transaction: take the seed lock, find the ids of the batch that already
exist, stream the rest through one `COPY` (validated by the users table's
statement-level trigger in one set-based pass), commit.  An interrupted seed
keeps every committed batch and leaves at most one batch of dead rows; running
it again fills in only what is missing.  At most MAX_USERS users per call.

The population is skewed the way a fashion app's is: big cities dominate,
"Minimal" and "Casual" outnumber "Glam", each archetype favours its own
palette and categories, about a quarter of users state vetoes and about 1%
veto every category (the feed's veto cascade has to cope with them).

Every seeded user is a simulated user (issue 27; docs/evaluation.md,
"Simulated users"): the seed draws a hidden truth first (schema ootd_truth,
which no ranking function reads: the true archetype and a loyalty to it, true
liked and disliked colors and categories, a true taste, true vibe/trend/dare)
and writes ootd.users as a noisy, partial view of it, as a sign-up form would
hold.  Each batch streams the users through one COPY and their truths
through a second one, in the same transaction (on a schema older than
revision 0018, without ootd_truth, the users alone).  Users created any
other way have no truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import psycopg

from batch import embed
from db.connect import all_rows, copy_chunks, one, run

CHUNK = 10_000  # ids drawn together from one generator seeded by (seed, chunk)
BATCH = 100_000  # ids per COPY and per transaction (10 chunks)
MAX_USERS = 10_000_000  # the most `ootd seed --users` accepts (about 5 GB of users)

# archetype -> (population share, favoured colors, favoured categories, (vibe, trend, dare) means)
PROFILES: dict[str, tuple[float, list[str], list[str], tuple[float, float, float]]] = {
    "Minimal": (
        0.18,
        ["Black", "White", "Beige", "Grey", "Navy", "Ivory"],
        ["Trousers", "Shirt", "Knitwear", "Coat"],
        (0.35, 0.45, 0.20),
    ),
    "Casual": (
        0.16,
        ["Blue", "White", "Grey", "Olive", "Navy"],
        ["Jeans", "Top", "Knitwear", "Jacket"],
        (0.50, 0.40, 0.25),
    ),
    "Classic": (
        0.15,
        ["Navy", "Camel", "White", "Black", "Burgundy"],
        ["Blazer", "Trousers", "Shirt", "Coat"],
        (0.40, 0.35, 0.20),
    ),
    "Streetwear": (
        0.12,
        ["Black", "Orange", "Olive", "Grey", "Red"],
        ["Jacket", "Jeans", "Top", "Activewear"],
        (0.65, 0.75, 0.55),
    ),
    "Sporty": (
        0.09,
        ["Black", "Blue", "White", "Green", "Grey"],
        ["Activewear", "Shorts", "Top", "Jacket"],
        (0.60, 0.50, 0.35),
    ),
    "Bohemian": (
        0.08,
        ["Brown", "Olive", "Orange", "Ivory", "Camel"],
        ["Dress", "Skirt", "Knitwear", "Top"],
        (0.60, 0.45, 0.45),
    ),
    "Romantic": (
        0.07,
        ["Pink", "Lavender", "Ivory", "Red", "White"],
        ["Dress", "Skirt", "Top", "Knitwear"],
        (0.55, 0.50, 0.35),
    ),
    "Edgy": (
        0.06,
        ["Black", "Burgundy", "Silver", "Grey", "Red"],
        ["Jacket", "Jeans", "Top", "Dress"],
        (0.55, 0.65, 0.75),
    ),
    "Preppy": (
        0.05,
        ["Navy", "Green", "White", "Red", "Camel"],
        ["Blazer", "Skirt", "Shirt", "Knitwear"],
        (0.45, 0.40, 0.25),
    ),
    "Glam": (
        0.04,
        ["Gold", "Silver", "Black", "Red", "Burgundy"],
        ["Dress", "Jumpsuit", "Suit", "Blazer"],
        (0.70, 0.80, 0.80),
    ),
}
NO_ARCHETYPE_SHARE = 0.02  # profiles without an archetype (clustering gives them a default)
VETO_SHARE = 0.25  # users with disliked_categories
COLOR_VETO_SHARE = 0.40  # ... of whom also dislike some colors
VETO_ALL_SHARE = 0.01  # users who veto every category
TRAVELLER_SHARE = 0.01  # users whose time zone is not their city's

# The hidden truth (schema ootd_truth; docs/evaluation.md, "Simulated users"): what each seeded
# user really likes, of which ootd.users is a noisy, partial view.
TRUE_TASTE_NOISE = 0.20  # per-coordinate sd of the truth's own taste around its archetype/colors/categories
STATED_TASTE_NOISE = 0.20  # per-coordinate sd the sign-up form adds to the true taste
STATED_TRAIT_NOISE = 0.06  # sd the form adds to the true vibe, trend and dare
TRUE_TRAIT_NOISE = 0.10  # sd of the true vibe, trend and dare around the archetype's means
LOYALTY_BETA = (2.0, 2.0)  # loyalty to the archetype ~ Beta(2, 2): mean 0.5


@dataclass(frozen=True)
class Vocabulary:
    cities: list[str]
    city_timezones: list[str]
    city_weights: np.ndarray
    archetypes: list[str]
    archetype_keywords: dict[str, list[str]]
    categories: list[str]
    colors: list[str]

    @classmethod
    def load(cls, conn: psycopg.Connection) -> "Vocabulary":
        cities = all_rows(conn, "seed_cities")
        archetypes = all_rows(conn, "seed_archetypes")
        vocab = one(conn, "vocabulary")["vocabulary"]
        population = np.array([c["population_k"] for c in cities], dtype=np.float64)
        weights = np.sqrt(population)  # big cities dominate, small ones still appear
        return cls(
            cities=[c["name"] for c in cities],
            city_timezones=[c["timezone"] for c in cities],
            city_weights=weights / weights.sum(),
            archetypes=[a["name"] for a in archetypes],
            archetype_keywords={a["name"]: list(a["keywords"]) for a in archetypes},
            categories=list(vocab["categories"]),
            colors=list(vocab["colors"]),
        )


@dataclass(frozen=True)
class SeedResult:
    requested: int
    created: int
    existing: int
    seconds: float


def check_request(users: int, seed: int, batch_size: int = BATCH) -> None:
    """Raise ValueError, with a message for people, unless seed_users can do this."""
    if users < 1:
        raise ValueError("--users must be at least 1")
    if users > MAX_USERS:
        raise ValueError(f"--users must be at most {MAX_USERS:,}, got {users:,}")
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def seed_users(conn: psycopg.Connection, users: int, seed: int, *, batch_size: int = BATCH) -> SeedResult:
    """Create users 1..`users` that do not exist yet, committing every `batch_size` ids.

    Whatever `conn` has open is committed first; then each batch is one
    transaction of its own (see the module docstring).
    """
    check_request(users, seed, batch_size)
    started = time.perf_counter()
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    vocab: Vocabulary | None = None
    with_truth: bool | None = None  # a schema older than revision 0018 has no ootd_truth: users only
    existing = 0
    for first in range(1, users + 1, batch_size):
        last = min(users, first + batch_size - 1)
        with conn.transaction():  # BEGIN ... COMMIT (the connection is idle here)
            run(conn, "lock_seed")
            present_count = one(conn, "seed_count_between", (first, last))["n"]
            existing += present_count
            if present_count == last - first + 1:
                continue
            present: set[int] = set()
            if present_count:
                present = set(one(conn, "seed_ids_between", (first, last))["ids"])
            vocab = vocab or Vocabulary.load(conn)
            if with_truth is None:
                with_truth = one(conn, "seed_truth_present")["present"]
            truths: list[bytes] = []
            copy_chunks(conn, "copy_users_text", _lines(vocab, seed, first, last, present, truths))
            if with_truth:
                copy_chunks(conn, "copy_truth_text", truths)  # after the users, whom they reference
    return SeedResult(users, users - existing, existing, time.perf_counter() - started)


def _lines(
    vocab: Vocabulary, seed: int, first: int, last: int, present: set[int], truths: list[bytes]
) -> Iterator[bytes]:
    """The users' COPY text chunk by chunk (streamed); each chunk's truth rows are kept in `truths`."""
    for chunk in range((first - 1) // CHUNK, (last - 1) // CHUNK + 1):
        users, truth = generate_chunk(vocab, seed, chunk, limit=last, skip=present, start=first)
        truths.append(truth)
        yield users


def generate_chunk(
    vocab: Vocabulary, seed: int, chunk: int, *, limit: int, skip: set[int] = frozenset(), start: int = 1
) -> tuple[bytes, bytes]:
    """COPY text rows of ootd.users and of ootd_truth.users for ids
    max(start, chunk*CHUNK+1) .. min(limit, (chunk+1)*CHUNK), minus `skip`.

    Every random draw is made for the whole chunk up front (vectorized), so
    a user's attributes do not depend on how many users are requested.

    The truth is the model; the stated profile is derived from it (docs/evaluation.md,
    "Simulated users"): the true archetype (stated, unless the user leaves it out), a
    ranking of colors and of categories led by the archetype's palette whose head is
    liked and whose tail is disliked (the stated preferred colors are the first 1 to 4
    liked ones; stated vetoes are the tail's last 1 or 2), the true taste (its
    archetype, liked colors and liked categories plus noise; stated: plus more noise),
    true vibe/trend/dare (stated: plus noise) and a loyalty to the archetype.
    """
    rng = np.random.default_rng([seed, chunk])
    n = CHUNK
    first_id = chunk * CHUNK + 1
    archetypes, colors, categories = vocab.archetypes, vocab.colors, vocab.categories
    n_col, n_cat = len(colors), len(categories)
    profiles = [PROFILES.get(a, (0.05, colors[:5], categories[:4], (0.5, 0.5, 0.5))) for a in archetypes]
    shares = np.array([p[0] for p in profiles])

    # The draws of the stated form's choices come first, in the order seeds have always drawn them,
    # so a user's city, archetype, vetoes, colors and categories stay what they were before the truth.
    arche_idx = rng.choice(len(archetypes), size=n, p=shares / shares.sum())
    has_arche = rng.random(n) >= NO_ARCHETYPE_SHARE
    city_idx = rng.choice(len(vocab.cities), size=n, p=vocab.city_weights)
    traveller = rng.random(n) < TRAVELLER_SHARE
    other_city = rng.integers(0, len(vocab.cities), size=n)
    veto_all = rng.random(n) < VETO_ALL_SHARE
    veto = rng.random(n) < VETO_SHARE
    color_veto = rng.random(n) < COLOR_VETO_SHARE
    n_colors = rng.integers(1, 5, size=n)
    n_liked = np.where(veto_all, 0, rng.integers(0, 4, size=n))
    n_disliked = rng.integers(1, 3, size=n)
    n_bad_colors = rng.integers(1, 3, size=n)
    stated_traits_noise = rng.normal(0.0, STATED_TRAIT_NOISE, size=(n, 3))
    stated_taste_noise = rng.normal(0.0, STATED_TASTE_NOISE, size=(n, embed.DIMENSIONS)).astype(np.float32)

    # Ranked preferences: the archetype's favoured names get a head start, so
    # each user's order mostly follows the palette and sometimes strays.  The
    # head of a ranking is liked, its tail disliked, so nobody dislikes what they like.
    fav_color = np.zeros((len(archetypes), n_col))
    fav_cat = np.zeros((len(archetypes), n_cat))
    for a, profile in enumerate(profiles):
        fav_color[a, [colors.index(c) for c in profile[1] if c in colors]] = 1.0
        fav_cat[a, [categories.index(c) for c in profile[2] if c in categories]] = 1.0
    color_rank = np.argsort(-(rng.random((n, n_col)) + 1.5 * fav_color[arche_idx]), axis=1)
    cat_rank = np.argsort(-(rng.random((n, n_cat)) + 1.5 * fav_cat[arche_idx]), axis=1)

    # The truth: how many of each ranking's head and tail the user really likes and dislikes (at
    # least what the form states of them), the taste's own noise, the traits, the loyalty.
    true_liked_colors = np.maximum(n_colors, rng.integers(3, 6, size=n))  # 3..5, stated 1..4 of them
    true_bad_colors = np.maximum(n_bad_colors, rng.integers(1, 4, size=n))  # 1..3
    true_liked_cats = np.maximum(n_liked, rng.integers(2, 4, size=n))  # 2..3, stated 0..3 of them
    true_bad_cats = np.maximum(n_disliked, rng.integers(1, 4, size=n))  # 1..3, stated 1..2 (vetoers)
    true_taste_noise = rng.normal(0.0, TRUE_TASTE_NOISE, size=(n, embed.DIMENSIONS)).astype(np.float32)
    true_traits_noise = rng.normal(0.0, TRUE_TRAIT_NOISE, size=(n, 3))
    loyalty = rng.beta(*LOYALTY_BETA, size=n).round(3)

    means = np.array([p[3] for p in profiles])[arche_idx]
    true_traits = np.clip(means + true_traits_noise, 0.0, 1.0).round(3)
    traits = np.clip(true_traits + stated_traits_noise, 0.0, 1.0).round(3)

    # Taste vectors live in the offline embedder's space: archetype words plus
    # 0.6 x each truly liked color and category, plus the truth's noise; the
    # stated taste is the true one plus the form's noise.
    arche_vec = np.stack(
        [embed.embed_words([w.lower() for w in vocab.archetype_keywords.get(a, [])] + [a.lower()]) for a in archetypes]
    )
    color_vec = np.stack([embed.word_vector(c.lower()) for c in colors])
    cat_vec = np.stack([embed.word_vector(c.lower()) for c in categories])
    positions_col = np.arange(n_col)[None, :]
    positions_cat = np.arange(n_cat)[None, :]
    color_onehot = np.zeros((n, n_col), dtype=np.float32)
    np.put_along_axis(color_onehot, color_rank, (positions_col < true_liked_colors[:, None]).astype(np.float32), axis=1)
    cat_onehot = np.zeros((n, n_cat), dtype=np.float32)
    np.put_along_axis(cat_onehot, cat_rank, (positions_cat < true_liked_cats[:, None]).astype(np.float32), axis=1)
    true_taste = arche_vec[arche_idx] + 0.6 * color_onehot @ color_vec + 0.6 * cat_onehot @ cat_vec
    true_taste = embed.normalize(embed.normalize(true_taste) + true_taste_noise)
    taste = embed.normalize(true_taste + stated_taste_noise)

    quoted_colors = [f'"{c}"' for c in colors]
    quoted_cats = [f'"{c}"' for c in categories]
    every_category = ",".join(quoted_cats)
    archetype_names = [_copy_text(a) for a in archetypes]
    city_names = [_copy_text(c) for c in vocab.cities]
    tz_names = [_copy_text(t) for t in vocab.city_timezones]
    last = max(0, min(n, limit - first_id + 1))
    lo = min(last, max(0, start - first_id))
    if lo == last:
        return b"", b""
    part = slice(lo, last)
    vectors = embed.vector_literals(taste[part])
    true_vectors = embed.vector_literals(true_taste[part])
    rows = zip(
        range(first_id + lo, first_id + last),
        arche_idx[part].tolist(),
        has_arche[part].tolist(),
        city_idx[part].tolist(),
        traveller[part].tolist(),
        other_city[part].tolist(),
        veto_all[part].tolist(),
        veto[part].tolist(),
        color_veto[part].tolist(),
        n_colors[part].tolist(),
        n_liked[part].tolist(),
        n_disliked[part].tolist(),
        n_bad_colors[part].tolist(),
        color_rank[part].tolist(),
        cat_rank[part].tolist(),
        traits[part].tolist(),
        vectors,
        true_liked_colors[part].tolist(),
        true_bad_colors[part].tolist(),
        true_liked_cats[part].tolist(),
        true_bad_cats[part].tolist(),
        true_traits[part].tolist(),
        loyalty[part].tolist(),
        true_vectors,
    )
    out: list[str] = []
    truth: list[str] = []
    for (
        user_id,
        a,
        has_a,
        city,
        travels,
        other,
        all_out,
        vetoes,
        color_vetoes,
        k_col,
        k_liked,
        k_dis,
        k_bad,
        c_rank,
        g_rank,
        (vibe, trend, dare),
        vector,
        t_col,
        t_bad,
        t_cat,
        t_dis,
        (t_vibe, t_trend, t_dare),
        loyal,
        true_vector,
    ) in rows:
        if user_id in skip:
            continue
        dna = '{"archetype":"%s",' % archetypes[a] if has_a else "{"
        dna += '"preferred_colors":[%s],"category_affinity":{},"vibe":%s,"trend":%s,"dare":%s}' % (
            ",".join([quoted_colors[i] for i in c_rank[:k_col]]),
            vibe,
            trend,
            dare,
        )
        rules = '{"liked_categories":[%s]' % ",".join([quoted_cats[i] for i in g_rank[:k_liked]])
        if all_out:
            rules += ',"disliked_categories":[%s]' % every_category
        elif vetoes:
            rules += ',"disliked_categories":[%s]' % ",".join([quoted_cats[i] for i in g_rank[-k_dis:]])
            if color_vetoes:
                rules += ',"disliked_colors":[%s]' % ",".join([quoted_colors[i] for i in c_rank[-k_bad:]])
        rules += "}"
        tz = tz_names[other] if travels else tz_names[city]
        out.append(f"{user_id}\t{city_names[city]}\t{tz}\t{dna}\t{rules}\t{vector}")
        truth.append(
            f"{user_id}\t{archetype_names[a]}\t{loyal}\t{true_vector}"
            f"\t{{{','.join([quoted_colors[i] for i in c_rank[:t_col]])}}}"
            f"\t{{{','.join([quoted_colors[i] for i in c_rank[-t_bad:]])}}}"
            f"\t{{{','.join([quoted_cats[i] for i in g_rank[:t_cat]])}}}"
            f"\t{{{','.join([quoted_cats[i] for i in g_rank[-t_dis:]])}}}"
            f"\t{t_vibe}\t{t_trend}\t{t_dare}"
        )
    if not out:
        return b"", b""
    return ("\n".join(out) + "\n").encode(), ("\n".join(truth) + "\n").encode()


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value
