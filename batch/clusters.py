"""Reading the K cluster rows (never the N users) and the vocabulary."""

from __future__ import annotations

from datetime import date

import psycopg

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


def load_recent_titles(conn: psycopg.Connection, day: date) -> dict[tuple[str, str], tuple[str, ...]]:
    """ootd.recent_titles(day): (archetype, weather) -> the titles served in the 3 days before `day`.

    One query for all clusters (at most archetypes x weather conditions rows), never one per cluster.
    """
    return {(r["archetype"], r["weather"]): tuple(r["titles"]) for r in all_rows(conn, "recent_titles", (day,))}


def load_demand(conn: psycopg.Connection, day: date) -> list[Cluster]:
    """ootd.cluster_demand(day): one row per cluster, largest first, each with the
    titles its archetype x weather served in the 3 days before (to avoid)."""
    recent = load_recent_titles(conn, day)
    return [
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
            avoid_titles=recent.get((r["archetype"], r["weather"]), ()),
        )
        for r in all_rows(conn, "cluster_demand", (day,))
    ]
