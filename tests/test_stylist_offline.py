"""The offline stylist: valid, plausible, weather- and archetype-shaped, deterministic pools.

Pure Python: no database.  Outfits are checked against pool_json_schema() by
hand (keys, enums, types) plus the pool rules the schema cannot express.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from batch.stylist_offline import CATEGORIES, NIGHT_COLORS, NOUNS, WEATHER_NOUNS, OfflineStylist
from batch.types import DAYPARTS, PER_DAYPART, POOL_SIZE, Cluster, Stylist, Usage, Vocabulary, pool_json_schema
from batch.validate import validate_pool
from db import REPO_ROOT

CATEGORY_NAMES = (
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
COLOR_NAMES = (
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
VOCABULARY = Vocabulary(categories=CATEGORY_NAMES, colors=COLOR_NAMES, weather=("Sunny", "Windy", "Rainy", "Cold"))

ARCHETYPES = {
    "Minimal": ("minimalist", ("clean", "tailored", "monochrome", "structured", "understated")),
    "Classic": ("classic", ("timeless", "tailored", "polished", "elegant", "refined")),
    "Casual": ("laid-back", ("relaxed", "comfortable", "easy", "soft", "everyday")),
    "Streetwear": ("street-smart", ("oversized", "graphic", "urban", "bold", "sneaker")),
    "Bohemian": ("boho", ("flowing", "earthy", "layered", "embroidered", "relaxed")),
    "Romantic": ("romantic", ("soft", "delicate", "floral", "feminine", "flowing")),
    "Edgy": ("edgy", ("leather", "dark", "bold", "studded", "sharp")),
    "Sporty": ("sporty", ("athletic", "technical", "comfortable", "sleek", "active")),
    "Preppy": ("preppy", ("polished", "collegiate", "crisp", "tailored", "classic")),
    "Glam": ("glamorous", ("sequined", "luxe", "bold", "statement", "shimmering")),
}
WEATHER = {
    "Sunny": ("sun-ready", ("light", "breathable", "linen", "bright", "airy")),
    "Windy": ("breezy", ("layered", "secure", "light-jacket", "structured", "crisp")),
    "Rainy": ("rain-ready", ("water-resistant", "trench", "boots", "layered", "practical")),
    "Cold": ("cozy", ("wool", "knit", "insulated", "layered", "warm")),
}
LIGHT_MATERIALS = {
    "Linen",
    "Cotton",
    "Silk",
    "Seersucker",
    "Poplin",
    "Chambray",
    "Chiffon",
    "Mesh",
    "Jersey",
    "Washed",
    "Crepe",
}
WARM_MATERIALS = {
    "Wool",
    "Cashmere",
    "Merino",
    "Mohair",
    "Alpaca",
    "Tweed",
    "Boucle",
    "Shearling",
    "Fleece",
    "Fleece-Lined",
    "Corduroy",
    "Velvet",
    "Flannel",
    "Knit",
}
DRESSY_CATEGORIES = {"Dress", "Jumpsuit", "Suit", "Blazer", "Top", "Skirt"}
STYLIST = OfflineStylist()


def make_cluster(archetype: str = "Minimal", weather: str = "Sunny", **overrides: Any) -> Cluster:
    adjective, keywords = ARCHETYPES[archetype]
    weather_adjective, weather_keywords = WEATHER[weather]
    fields: dict[str, Any] = dict(
        pool_date=date(2026, 4, 20),
        cluster_id=f"20260420_{archetype}_{weather}",
        archetype=archetype,
        archetype_adjective=adjective,
        archetype_keywords=keywords,
        weather=weather,
        weather_adjective=weather_adjective,
        weather_keywords=weather_keywords,
        members=300,
        top_colors=("Black", "Beige"),
        top_liked_categories=("Trousers", "Shirt"),
        mean_vibe=0.4,
        mean_trend=0.5,
        mean_dare=0.3,
    )
    fields.update(overrides)
    return Cluster(**fields)


def pool_for(cluster: Cluster, vocabulary: Vocabulary = VOCABULARY) -> list[dict[str, Any]]:
    outfits, usage = STYLIST.generate(cluster, vocabulary)
    assert usage == Usage(0, 0)
    return outfits


def all_pools(**overrides: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """One pool per archetype x weather (40 clusters, like a full day)."""
    return {(a, w): pool_for(make_cluster(a, w, **overrides)) for a in ARCHETYPES for w in WEATHER}


def schema_errors(outfit: dict[str, Any], vocabulary: Vocabulary) -> list[str]:
    """Check one outfit against pool_json_schema()'s item, by hand."""
    item = pool_json_schema(vocabulary)["properties"]["outfits"]["items"]
    errors = []
    if set(outfit) != set(item["required"]) or set(outfit) != set(item["properties"]):
        errors.append(f"keys {sorted(outfit)}")
    python_types = {"string": str, "number": float, "array": list}
    for key, spec in item["properties"].items():
        value = outfit.get(key)
        if not isinstance(value, python_types[spec["type"]]) or isinstance(value, bool):
            errors.append(f"{key}: {value!r} is not {spec['type']}")
        if "enum" in spec and value not in spec["enum"]:
            errors.append(f"{key}: {value!r} not in enum")
        if spec["type"] == "array" and not all(isinstance(v, str) for v in value or [None]):
            errors.append(f"{key}: items must be strings")
    return errors


# -- shape ---------------------------------------------------------------------------


def test_offline_stylist_follows_the_stylist_protocol():
    stylist: Stylist = STYLIST
    assert (stylist.name, stylist.model) == ("offline", "ootd-offline-stylist-1")


def test_every_outfit_matches_the_pool_schema():
    for (archetype, weather), pool in all_pools().items():
        assert len(pool) == POOL_SIZE == 20
        for outfit in pool:
            assert schema_errors(outfit, VOCABULARY) == [], (archetype, weather, outfit)


def test_schema_check_catches_bad_outfits():
    good = pool_for(make_cluster())[0]
    assert schema_errors(good, VOCABULARY) == []
    assert schema_errors({**good, "extra": 1}, VOCABULARY)
    assert schema_errors({**good, "category": "Tutu"}, VOCABULARY)
    assert schema_errors({**good, "daypart": "Evening"}, VOCABULARY)
    assert schema_errors({**good, "vibe": "0.5"}, VOCABULARY)
    assert schema_errors({**good, "pieces": [1, 2]}, VOCABULARY)


def test_pool_has_ten_daytime_and_ten_nightout_outfits():
    for pool in all_pools().values():
        assert Counter(o["daypart"] for o in pool) == {"Daytime": PER_DAYPART, "NightOut": PER_DAYPART}
        assert [o["daypart"] for o in pool] == [DAYPARTS[0]] * 10 + [DAYPARTS[1]] * 10


def test_titles_are_distinct_shop_window_names():
    for pool in all_pools().values():
        titles = [o["title"] for o in pool]
        assert len(set(titles)) == 20
        for outfit in pool:
            title, category = outfit["title"], outfit["category"]
            assert not re.match(r"^Outfit \d+", title)
            assert title.startswith(outfit["color"] + " ")
            nouns = (
                NOUNS[category]["Daytime"]
                + NOUNS[category]["NightOut"]
                + sum((by_category.get(category, ()) for by_category in WEATHER_NOUNS.values()), ())
            )
            assert title.endswith(nouns), (title, category)
            assert len(title.split()) >= 3  # color, material, garment


def test_pieces_start_with_the_hero_and_complete_the_look():
    for pool in all_pools().values():
        for outfit in pool:
            pieces = outfit["pieces"]
            assert 2 <= len(pieces) <= 6
            assert pieces[0] == outfit["title"]
            assert len(set(pieces)) == len(pieces)
            assert all(p.strip() == p and p for p in pieces)


def test_scores_are_two_decimal_numbers_in_unit_range():
    for pool in all_pools().values():
        for outfit in pool:
            for key in ("vibe", "trend", "dare"):
                assert 0.0 <= outfit[key] <= 1.0
                assert outfit[key] == round(outfit[key], 2)


def test_reason_is_one_short_line_naming_weather_and_archetype():
    for (archetype, weather), pool in all_pools().items():
        for outfit in pool:
            reason = outfit["reason"]
            assert "\n" not in reason and 20 < len(reason) < 160
            assert WEATHER[weather][0] in reason
            assert ARCHETYPES[archetype][0] in reason
            assert reason[0].isupper() and reason.endswith(".")


# -- vocabulary --------------------------------------------------------------------------


def test_category_table_matches_the_database(template_url):
    import psycopg

    with psycopg.connect(template_url) as conn:
        rows = conn.execute("SELECT name, garment, warmth FROM ootd.categories").fetchall()
    assert len(rows) == 14
    assert CATEGORIES == {name: (garment, warmth) for name, garment, warmth in rows}
    assert set(CATEGORY_NAMES) == set(CATEGORIES)


def test_only_vocabulary_names_are_used():
    small = Vocabulary(
        categories=("Dress", "Coat", "Jeans", "Top", "Skirt", "Blazer", "Shirt"),
        colors=("Black", "Navy", "Ivory", "Red", "Olive", "Grey"),
    )
    pool = pool_for(make_cluster(top_liked_categories=("Shorts",), top_colors=("Pink",)), small)
    assert len(pool) == 20
    assert {o["category"] for o in pool} <= set(small.categories)
    assert {o["color"] for o in pool} <= set(small.colors)
    assert all(schema_errors(o, small) == [] for o in pool)


def test_unknown_categories_use_their_own_name_as_the_garment():
    tiny = Vocabulary(categories=("Dress", "Cape"), colors=("Black", "White"))
    pool = pool_for(make_cluster(), tiny)
    capes = [o for o in pool if o["category"] == "Cape"]
    assert len(pool) == 20 and len({o["title"] for o in pool}) == 20
    assert capes and all(o["title"].endswith(" Cape") for o in capes)
    assert Counter(o["daypart"] for o in pool) == {"Daytime": 10, "NightOut": 10}


def test_an_unknown_weather_still_gives_a_valid_pool():
    cluster = replace(make_cluster(), cluster_id="20260420_Minimal_Foggy", weather="Foggy", weather_adjective="misty")
    pool = pool_for(cluster)
    assert len({o["title"] for o in pool}) == 20
    assert all(schema_errors(o, VOCABULARY) == [] and "misty" in o["reason"] for o in pool)


# -- determinism ------------------------------------------------------------------------


def test_same_cluster_gives_the_identical_pool():
    cluster = make_cluster()
    assert pool_for(cluster) == pool_for(cluster)
    assert OfflineStylist().generate(cluster, VOCABULARY) == STYLIST.generate(cluster, VOCABULARY)


def test_feedback_does_not_change_the_pool():
    cluster = make_cluster("Edgy", "Rainy")
    assert STYLIST.generate(cluster, VOCABULARY, feedback="outfit 3: unknown color 'Teal'") == STYLIST.generate(
        cluster, VOCABULARY
    )


def test_different_cluster_ids_give_different_pools():
    pools = [pool_for(make_cluster(cluster_id=f"2026042{d}_Minimal_Sunny")) for d in range(5)]
    title_sets = [tuple(o["title"] for o in pool) for pool in pools]
    assert len(set(title_sets)) == 5
    pools = all_pools()
    assert len({tuple(o["title"] for o in pool) for pool in pools.values()}) == 40


def test_pool_does_not_depend_on_the_process_hash_seed():
    script = (
        "import json, sys; from datetime import date; "
        "from tests.test_stylist_offline import make_cluster, pool_for; "
        "print(json.dumps(pool_for(make_cluster('Glam', 'Cold'))))"
    )
    outputs = set()
    for seed in ("0", "7", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=True
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == pool_for(make_cluster("Glam", "Cold"))


# -- fresh: no title of the last 3 days --------------------------------------------------


def consecutive_pools(archetype: str, weather: str, days: int, *, avoid: bool = True) -> list[list[dict[str, Any]]]:
    """One cluster's pools on consecutive days from 2026-04-20, each given the titles of the 3
    days before, most recent first (as ootd.recent_titles lists them), unless `avoid` is off."""
    pools: list[list[dict[str, Any]]] = []
    for d in range(days):
        day = date(2026, 4, 20) + timedelta(days=d)
        recent = tuple(o["title"] for pool in reversed(pools[-3:]) for o in pool) if avoid else ()
        pools.append(
            pool_for(
                make_cluster(
                    archetype,
                    weather,
                    pool_date=day,
                    avoid_titles=recent,
                    cluster_id=f"{day:%Y%m%d}_{archetype}_{weather}",
                )
            )
        )
    return pools


def test_consecutive_days_share_no_title_with_the_three_days_before():
    for archetype in ARCHETYPES:
        for weather in WEATHER:
            titles = [[o["title"] for o in pool] for pool in consecutive_pools(archetype, weather, 4)]
            assert all(len(set(day)) == 20 for day in titles)
            for d in range(1, 4):
                before = {t for day in titles[max(0, d - 3) : d] for t in day}
                assert not set(titles[d]) & before, (archetype, weather, d)
            assert len({t for day in titles for t in day}) == 80


def test_without_titles_to_avoid_consecutive_days_do_repeat_some():
    """What the list is for: the date alone varies the pool but cannot rule a repeat out."""
    repeats = 0
    for archetype in ARCHETYPES:
        for weather in WEATHER:
            titles = [{o["title"] for o in pool} for pool in consecutive_pools(archetype, weather, 4, avoid=False)]
            assert len({frozenset(day) for day in titles}) == 4  # every day another pool
            repeats += sum(len(titles[d] & set().union(*titles[max(0, d - 3) : d])) for d in range(1, 4))
    assert repeats > 0


def test_titles_to_avoid_are_matched_in_any_case_and_the_pool_stays_valid_and_deterministic():
    cluster = make_cluster("Minimal", "Cold")
    own = [o["title"] for o in pool_for(cluster)]
    avoiding = replace(cluster, avoid_titles=tuple(f" {t.upper()} " for t in own))
    pool = pool_for(avoiding)
    assert not {o["title"].casefold() for o in pool} & {t.casefold() for t in own}
    assert pool == pool_for(avoiding)
    assert all(schema_errors(o, VOCABULARY) == [] for o in pool)
    assert validate_pool(pool, VOCABULARY, avoiding.avoid_titles) == pool
    assert Counter(o["daypart"] for o in pool) == {"Daytime": 10, "NightOut": 10}
    assert max(Counter(o["category"] for o in pool).values()) <= 3


# -- shaped by the cluster --------------------------------------------------------------


def test_cold_pools_have_more_coats_and_knitwear_than_sunny_ones():
    def warm_heroes(pool: list[dict[str, Any]]) -> int:
        return sum(o["category"] in ("Coat", "Knitwear") for o in pool)

    assert warm_heroes(pool_for(make_cluster(weather="Cold"))) > warm_heroes(pool_for(make_cluster(weather="Sunny")))
    pools = all_pools()
    for archetype in ARCHETYPES:
        assert warm_heroes(pools[archetype, "Cold"]) > warm_heroes(pools[archetype, "Sunny"]), archetype


def test_materials_follow_the_weather():
    pools = all_pools()

    def share(weather: str, materials: set[str]) -> float:
        heroes = [o["title"] for a in ARCHETYPES for o in pools[a, weather]]
        return sum(bool(set(t.split()) & materials) for t in heroes) / len(heroes)

    assert share("Sunny", LIGHT_MATERIALS) > 0.6
    assert share("Sunny", WARM_MATERIALS) < 0.05
    assert share("Cold", WARM_MATERIALS) > 0.6
    assert share("Cold", LIGHT_MATERIALS) < 0.2
    rainy_pieces = " ".join(p for a in ARCHETYPES for o in pools[a, "Rainy"] for p in o["pieces"])
    assert "Trench" in rainy_pieces and "Rain" in rainy_pieces
    sunny_pieces = [p for a in ARCHETYPES for o in pools[a, "Sunny"] for p in o["pieces"]]
    assert not [p for p in sunny_pieces if "Puffer" in p or "Shearling" in p or "Beanie" in p]
    cold_pieces = [p for a in ARCHETYPES for o in pools[a, "Cold"] for p in o["pieces"]]
    assert not [p for p in cold_pieces if "Sandals" in p or "Sun Hat" in p]


def test_pools_are_diverse_enough_for_members_with_vetoes():
    for key, pool in all_pools().items():
        categories, colors = Counter(o["category"] for o in pool), Counter(o["color"] for o in pool)
        assert len(categories) >= 6, key
        assert len(colors) >= 5, key
        assert max(categories.values()) <= 3 and max(colors.values()) <= 3, key


def test_favourite_colors_and_liked_categories_fill_about_half_the_pool():
    pool = pool_for(make_cluster(top_colors=("Black", "Beige"), top_liked_categories=("Trousers", "Shirt")))
    colors, categories = Counter(o["color"] for o in pool), Counter(o["category"] for o in pool)
    assert colors["Black"] == 3 and colors["Beige"] == 3  # up to the per-color cap
    assert categories["Trousers"] == 3 and categories["Shirt"] == 3
    other = pool_for(make_cluster(top_colors=("Green", "Orange"), top_liked_categories=("Jumpsuit", "Shorts")))
    assert Counter(o["color"] for o in other)["Green"] == 3
    assert Counter(o["category"] for o in other)["Jumpsuit"] == 3


def test_common_vetoes_are_offered_less_but_not_removed():
    plain = all_pools(top_colors=(), top_liked_categories=())
    vetoed = all_pools(
        top_colors=(), top_liked_categories=(), common_vetoes=("Dress", "Top"), common_color_vetoes=("Black",)
    )

    def count(pools: dict, key: str, names: tuple[str, ...]) -> int:
        return sum(o[key] in names for pool in pools.values() for o in pool)

    assert count(vetoed, "category", ("Dress", "Top")) < count(plain, "category", ("Dress", "Top"))
    assert count(vetoed, "color", ("Black",)) < count(plain, "color", ("Black",))
    assert count(vetoed, "category", ("Dress", "Top")) > 0


def test_night_out_leans_darker_dressier_and_bolder():
    pools = all_pools(top_colors=(), top_liked_categories=())
    outfits = [o for pool in pools.values() for o in pool]
    day = [o for o in outfits if o["daypart"] == "Daytime"]
    night = [o for o in outfits if o["daypart"] == "NightOut"]
    assert len(day) == len(night) == 400

    def share(group: list[dict[str, Any]], test) -> float:
        return sum(map(test, group)) / len(group)

    assert share(night, lambda o: o["color"] in NIGHT_COLORS) > share(day, lambda o: o["color"] in NIGHT_COLORS) + 0.15
    assert (
        share(night, lambda o: o["category"] in DRESSY_CATEGORIES)
        > share(day, lambda o: o["category"] in DRESSY_CATEGORIES) + 0.15
    )
    assert sum(o["dare"] for o in night) / 400 > sum(o["dare"] for o in day) / 400
    assert share(night, lambda o: o["category"] == "Activewear") < share(day, lambda o: o["category"] == "Activewear")


@pytest.mark.parametrize("mean", [0.2, 0.5, 0.8])
def test_scores_scatter_around_the_cluster_means(mean: float):
    pool = pool_for(make_cluster("Glam", "Windy", mean_vibe=mean, mean_trend=mean, mean_dare=mean))
    for key in ("vibe", "trend", "dare"):
        values = [o[key] for o in pool]
        assert abs(sum(values) / 20 - mean) < 0.1, key
        assert len(set(values)) >= 8, key  # scattered, not constant
