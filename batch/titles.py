"""Titles already taken: what a new pool of a date must not use.

The rule lives in SQL: `ootd.taken_titles(day)` lists every title of every
pool (any cluster) dated within 3 days of `day`, the day included, and
`ootd.store_pool` refuses a pool that uses one (SQLSTATE 23P01).  The feed
serves a user their cluster's pool plus the same-weather neighbour pools of
their local date, so a title is unique across all pools, not per cluster.

The nightly reads the rows once per run into a `TakenTitles` and adds the
titles of each pool it accepts (`claim`, under a lock: clusters are
generated concurrently), so two pools of one run never share a title either:
a pool whose title another cluster claimed meanwhile is invalid output,
retried like any other.  `for_cluster` orders the titles for a cluster's
prompt and for the offline stylist (which avoids every one of them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from batch.types import Cluster

#: How validation and the claim name the problem (batch.validate uses it too).
TAKEN_PROBLEM = "titles already taken by other pools within 3 days"

#: The most titles a prompt lists (about 10 tokens each); the answer is still checked against all of them.
MAX_PROMPT_TITLES = 150


def title_key(title: str) -> str:
    """What makes two titles the same: their words, whatever the spacing and case
    (as ootd._title_key compares them; casefold also equates what lower() does)."""
    return " ".join(title.split()).casefold()


@dataclass(frozen=True)
class Taken:
    """One taken title and the pool that has it (a row of ootd.taken_titles)."""

    title: str
    pool_date: date
    cluster_id: str
    archetype: str
    weather: str


class TakenTitles:
    """A date's taken titles: ootd.taken_titles(day), plus the pools this run accepted."""

    def __init__(self, day: date, rows: Iterable[Taken] = ()) -> None:
        self.day = day
        self._lock = threading.Lock()
        self._by_key: dict[str, Taken] = {}
        self._sorted: list[Taken] | None = None
        for row in rows:
            self._by_key.setdefault(title_key(row.title), row)  # rows come nearest date first

    @classmethod
    def from_rows(cls, day: date, rows: Iterable[dict]) -> "TakenTitles":
        return cls(
            day, (Taken(r["title"], r["pool_date"], r["cluster_id"], r["archetype"], r["weather"]) for r in rows)
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)

    def for_cluster(self, cluster: Cluster) -> tuple[str, ...]:
        """Every taken title, the likeliest to be repeated by this cluster first: its own
        archetype x weather's, then same weather (the neighbour pools its members are also
        served), then same archetype, then the rest; nearer dates first, then by title."""
        buckets: tuple[list[str], ...] = ([], [], [], [])
        for t in self._by_distance():
            if t.weather == cluster.weather:
                buckets[0 if t.archetype == cluster.archetype else 1].append(t.title)
            else:
                buckets[2 if t.archetype == cluster.archetype else 3].append(t.title)
        return tuple(title for bucket in buckets for title in bucket)

    def _by_distance(self) -> list[Taken]:
        """The taken titles, nearest date first (then later dates, then by title); sorted once per change."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(
                    self._by_key.values(),
                    key=lambda t: (abs((t.pool_date - self.day).days), -t.pool_date.toordinal(), t.title),
                )
            return self._sorted

    def claim(self, cluster: Cluster, titles: Iterable[str]) -> list[tuple[int, str, Taken]]:
        """Take `titles` for `cluster`'s pool, all or none: the (outfit number, title, holder)
        of each one already taken (then nothing is claimed), else []."""
        numbered = list(enumerate(titles, start=1))
        with self._lock:
            clashes = [
                (i, t, self._by_key[title_key(t)])
                for i, t in numbered
                if title_key(t) in self._by_key and self._by_key[title_key(t)].cluster_id != cluster.cluster_id
            ]
            if not clashes:
                self._sorted = None
                for _, t in numbered:
                    self._by_key[title_key(t)] = Taken(
                        t, cluster.pool_date, cluster.cluster_id, cluster.archetype, cluster.weather
                    )
            return clashes

    def release(self, cluster: Cluster) -> None:
        """Forget what `cluster` claimed (its pool was not stored after all)."""
        with self._lock:
            self._by_key = {k: v for k, v in self._by_key.items() if v.cluster_id != cluster.cluster_id}
            self._sorted = None


def clash_message(clashes: list[tuple[int, str, Taken]]) -> str:
    """The validation problem for titles another pool holds (the retry's feedback)."""
    named = ", ".join(f'"{t}" (outfit {i}, in {holder.cluster_id})' for i, t, holder in clashes)
    return f"{TAKEN_PROBLEM}: {named}; every title must be new"
