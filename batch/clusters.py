"""Reading the K cluster rows (never the N users) and the vocabulary."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import psycopg

from batch.titles import TakenTitles
from batch.types import Cluster, Vocabulary
from db.connect import all_rows, one


def load_vocabulary(conn: psycopg.Connection) -> Vocabulary:
    v = one(conn, "vocabulary")["vocabulary"]
    return Vocabulary(
        categories=tuple(v["categories"]),
        colors=tuple(v["colors"]),
        archetypes=tuple(v["archetypes"]),
        weather=tuple(v["weather"]),
    )


def load_taken_titles(conn: psycopg.Connection, day: date) -> TakenTitles:
    """ootd.taken_titles(day): every title of every pool dated within 3 days of `day` (the day included).

    One query for all clusters (a few thousand rows at most), never one per cluster.  A schema older
    than revision 0018 has no ootd.taken_titles (and its store_pool no cross-pool rule): nothing is taken.
    """
    if not one(conn, "taken_titles_present")["present"]:
        return TakenTitles.from_rows(day, [])
    return TakenTitles.from_rows(day, all_rows(conn, "taken_titles", (day,)))


def load_demand(conn: psycopg.Connection, day: date, taken: TakenTitles | None = None) -> list[Cluster]:
    """ootd.cluster_demand(day): one row per cluster, largest first, each with the titles
    taken by the pools within 3 days (to avoid; `taken`, else read here), its own first."""
    taken = taken if taken is not None else load_taken_titles(conn, day)
    clusters = [
        Cluster(
            pool_date=day,
            cluster_id=r["cluster_id"],
            archetype=r["archetype"],
            archetype_adjective=r["archetype_adjective"],
            archetype_keywords=tuple(r["archetype_keywords"]),
            weather=r["weather"],
            weather_adjective=r["weather_adjective"],
            weather_keywords=tuple(r["weather_keywords"]),
            members=r["members"],
            top_colors=tuple(r["top_colors"]),
            top_liked_categories=tuple(r["top_liked_categories"]),
            common_vetoes=tuple(r["common_vetoes"]),
            common_color_vetoes=tuple(r["common_color_vetoes"]),
            mean_vibe=r["mean_vibe"],
            mean_trend=r["mean_trend"],
            mean_dare=r["mean_dare"],
            cities=tuple(r["cities"]),
            mean_temp_c=r["mean_temp_c"],
            has_pool=r["has_pool"],
        )
        for r in all_rows(conn, "cluster_demand", (day,))
    ]
    return [replace(c, avoid_titles=taken.for_cluster(c)) for c in clusters]
