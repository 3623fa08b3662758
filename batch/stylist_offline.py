"""The offline stylist: a cluster's 20-outfit pool without an LLM.

Used when there is no `OPENAI_API_KEY` (demos, tests, CI) and as a fallback.
It has to be good enough that the rest of the system (validation, vetoes,
scoring, the feed) behaves as it would with real pools, so the pool is:

* in the exact shape of `pool_json_schema()`: 10 "Daytime" + 10 "NightOut"
  outfits, names only from the vocabulary;
* plausible: a title is color + material + garment ("Black Wool Wrap Coat"),
  the garment belongs to the hero category, the material suits the weather
  (linen when sunny, wool when cold, gabardine when rainy, denim when windy)
  and the complementary pieces suit both the weather and the daypart;
* shaped by the cluster: weather moves categories by their warmth (more coats
  and knitwear when cold), the archetype adds its signature categories,
  materials and accents, and about half the outfits use the cluster's
  favourite colors and liked categories;
* diverse: no category or color more than 3 times, so a pool always offers
  at least 7 categories and 7 colors (with the full vocabulary) and members
  with vetoes still have something to wear;
* fresh: no title another pool within 3 days already uses (`Cluster.avoid_titles`:
  ootd.taken_titles plus the pools the run made before this one, whatever the
  cluster, since the feed serves neighbour pools too); a drawn title that is
  taken is redrawn (garment and material, then the color too), and only then
  the first free one is taken;
* deterministic: everything is drawn from a `random.Random` seeded by a
  BLAKE2b digest of the cluster id, which starts with the pool date
  (YYYYMMDD_Archetype_Weather), so a cluster gets the same pool for a date
  (and the same titles to avoid: the nightly runs offline clusters one at a
  time, in ootd.cluster_demand's order) on every machine and run, and
  another pool the next day.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any, Sequence

from batch.titles import title_key
from batch.types import DAYPARTS, PER_DAYPART, POOL_SIZE, Cluster, Usage, Vocabulary

MAX_PER_CATEGORY = 3  # per pool: keeps >= 7 categories with the full vocabulary
MAX_PER_COLOR = 3
REDRAWS = 8  # garment/material redraws (then as many with the color too) before the first free title
FAVOURED_EVERY = 2  # every 2nd outfit draws from the cluster's favourite colors/categories
_SPREAD = 0.12  # std-dev of vibe/trend/dare around the cluster means

# -- reference data (mirrors ootd.categories; a test keeps the two in sync) ----

# category -> (garment, warmth 0..3)
CATEGORIES: dict[str, tuple[str, int]] = {
    "Dress": ("one-piece", 1),
    "Jumpsuit": ("one-piece", 1),
    "Suit": ("one-piece", 2),
    "Top": ("top", 0),
    "Shirt": ("top", 1),
    "Knitwear": ("top", 2),
    "Skirt": ("bottom", 1),
    "Trousers": ("bottom", 2),
    "Jeans": ("bottom", 2),
    "Shorts": ("bottom", 0),
    "Blazer": ("outerwear", 2),
    "Jacket": ("outerwear", 2),
    "Coat": ("outerwear", 3),
    "Activewear": ("one-piece", 1),
}

# -- garments: category -> daypart -> nouns (materials never appear in a noun) --

NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "Dress": {
        "Daytime": ("Shirt Dress", "Wrap Dress", "Midi Dress", "Tea Dress", "Smock Dress"),
        "NightOut": ("Slip Dress", "Cocktail Dress", "Column Dress", "Mini Dress", "Halter Dress"),
    },
    "Jumpsuit": {
        "Daytime": ("Utility Jumpsuit", "Wide-Leg Jumpsuit", "Boiler Suit", "Belted Jumpsuit"),
        "NightOut": ("Halter Jumpsuit", "Tailored Jumpsuit", "Wrap Jumpsuit", "Strapless Jumpsuit"),
    },
    "Suit": {
        "Daytime": ("Trouser Suit", "Relaxed Suit", "Shorts Suit", "Two-Piece Suit"),
        "NightOut": ("Tuxedo Suit", "Double-Breasted Suit", "Three-Piece Suit", "Cropped-Jacket Suit"),
    },
    "Top": {
        "Daytime": ("Tank Top", "Boxy Tee", "Peplum Top", "Polo Top", "Square-Neck Top"),
        "NightOut": ("Corset Top", "Halter Top", "Bustier Top", "Camisole", "One-Shoulder Top"),
    },
    "Shirt": {
        "Daytime": ("Oxford Shirt", "Oversized Shirt", "Camp-Collar Shirt", "Button-Down Shirt"),
        "NightOut": ("Tuxedo Shirt", "Sheer Shirt", "Pussy-Bow Blouse", "Ruffled Blouse"),
    },
    "Knitwear": {
        "Daytime": ("Crewneck Sweater", "Cardigan", "Fisherman Sweater", "Sweater Vest", "Half-Zip Sweater"),
        "NightOut": ("Fine-Gauge Turtleneck", "Wrap Cardigan", "Off-Shoulder Sweater", "Knit Polo"),
    },
    "Skirt": {
        "Daytime": ("Midi Skirt", "Pleated Skirt", "A-Line Skirt", "Wrap Skirt"),
        "NightOut": ("Slip Skirt", "Pencil Skirt", "Mini Skirt", "Asymmetric Skirt"),
    },
    "Trousers": {
        "Daytime": ("Wide-Leg Trousers", "Cargo Trousers", "Pleated Trousers", "Straight Trousers"),
        "NightOut": ("Cigarette Trousers", "Palazzo Trousers", "Tuxedo Trousers", "Flared Trousers"),
    },
    "Jeans": {
        "Daytime": ("Straight-Leg Jeans", "Barrel Jeans", "Boyfriend Jeans", "Wide-Leg Jeans"),
        "NightOut": ("Skinny Jeans", "Flared Jeans", "Bootcut Jeans", "High-Rise Jeans"),
    },
    "Shorts": {
        "Daytime": ("Bermuda Shorts", "Paperbag Shorts", "Cargo Shorts", "Drawstring Shorts"),
        "NightOut": ("Tailored Shorts", "High-Waisted Shorts", "Pleated Shorts", "Micro Shorts"),
    },
    "Blazer": {
        "Daytime": ("Oversized Blazer", "Single-Breasted Blazer", "Boyfriend Blazer"),
        "NightOut": ("Double-Breasted Blazer", "Cropped Blazer", "Tuxedo Blazer", "Sharp-Shouldered Blazer"),
    },
    "Jacket": {
        "Daytime": ("Bomber Jacket", "Chore Jacket", "Field Jacket", "Trucker Jacket", "Overshirt Jacket"),
        "NightOut": ("Biker Jacket", "Cropped Jacket", "Bolero Jacket", "Racer Jacket"),
    },
    "Coat": {
        "Daytime": ("Car Coat", "Duffle Coat", "Overcoat", "Balmacaan Coat"),
        "NightOut": ("Wrap Coat", "Cocoon Coat", "Longline Coat", "Belted Coat"),
    },
    "Activewear": {
        "Daytime": ("Track Suit", "Running Set", "Yoga Set", "Zip-Up Track Set"),
        "NightOut": ("Sculpting Bodysuit", "Track Set", "Zip-Front Catsuit"),
    },
}

# Extra nouns a condition makes likely (drawn half the time when there are any).
WEATHER_NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "Sunny": {
        "Dress": ("Sundress", "Tiered Maxi Dress"),
        "Top": ("Camisole", "Crop Top"),
        "Shirt": ("Short-Sleeve Shirt",),
        "Shorts": ("Bermuda Shorts",),
    },
    "Windy": {
        "Jacket": ("Windbreaker Jacket", "Harrington Jacket"),
        "Coat": ("Funnel-Neck Coat",),
        "Blazer": ("Structured Blazer",),
        "Knitwear": ("Turtleneck",),
    },
    "Rainy": {
        "Coat": ("Trench Coat", "Mac Coat", "Hooded Coat"),
        "Jacket": ("Rain Jacket", "Anorak Jacket"),
        "Trousers": ("Tapered Trousers",),
    },
    "Cold": {
        "Coat": ("Puffer Coat", "Duffle Coat", "Double-Breasted Coat"),
        "Knitwear": ("Cable-Knit Sweater", "Roll-Neck Sweater", "Chunky Cardigan"),
        "Jacket": ("Quilted Jacket", "Aviator Jacket"),
    },
}

# -- materials -----------------------------------------------------------------

CATEGORY_MATERIALS: dict[str, tuple[str, ...]] = {
    "Dress": (
        "Linen",
        "Cotton",
        "Silk",
        "Satin",
        "Jersey",
        "Wool",
        "Velvet",
        "Crepe",
        "Chiffon",
        "Lace",
        "Poplin",
        "Sequined",
        "Knit",
    ),
    "Jumpsuit": ("Linen", "Cotton", "Denim", "Twill", "Crepe", "Satin", "Wool", "Jersey", "Velvet"),
    "Suit": ("Linen", "Wool", "Tweed", "Velvet", "Crepe", "Seersucker", "Twill", "Flannel", "Satin"),
    "Top": ("Cotton", "Silk", "Satin", "Linen", "Jersey", "Lace", "Mesh", "Sequined", "Ribbed", "Merino"),
    "Shirt": ("Cotton", "Linen", "Silk", "Poplin", "Chambray", "Flannel", "Denim", "Chiffon", "Satin"),
    "Knitwear": ("Cashmere", "Merino", "Wool", "Cotton", "Mohair", "Alpaca", "Linen", "Lurex"),
    "Skirt": ("Silk", "Satin", "Linen", "Cotton", "Denim", "Wool", "Leather", "Tweed", "Suede", "Sequined"),
    "Trousers": ("Linen", "Cotton", "Wool", "Twill", "Crepe", "Corduroy", "Leather", "Gabardine", "Velvet", "Nylon"),
    "Jeans": ("Selvedge", "Stretch", "Washed", "Rigid", "Coated", "Fleece-Lined"),
    "Shorts": ("Linen", "Cotton", "Denim", "Twill", "Seersucker", "Leather", "Satin", "Nylon"),
    "Blazer": ("Linen", "Wool", "Tweed", "Velvet", "Crepe", "Boucle", "Twill", "Seersucker", "Satin"),
    "Jacket": (
        "Leather",
        "Suede",
        "Denim",
        "Nylon",
        "Waxed Cotton",
        "Corduroy",
        "Shearling",
        "Twill",
        "Canvas",
        "Ripstop",
        "Sequined",
    ),
    "Coat": (
        "Wool",
        "Cashmere",
        "Gabardine",
        "Boucle",
        "Tweed",
        "Nylon",
        "Waxed Cotton",
        "Linen",
        "Cotton",
        "Shearling",
        "Velvet",
    ),
    "Activewear": ("Nylon", "Tech Jersey", "Fleece", "Mesh", "Ripstop", "Cotton", "Ribbed"),
}
GENERIC_MATERIALS = ("Cotton", "Wool", "Silk", "Linen", "Jersey", "Leather", "Nylon")
# Garments that only come in some materials (no "Shearling Puffer Coat").
NOUN_MATERIALS: dict[str, tuple[str, ...]] = {
    "Puffer Coat": ("Nylon", "Ripstop"),
    "Trench Coat": ("Gabardine", "Cotton", "Waxed Cotton", "Leather"),
    "Mac Coat": ("Gabardine", "Nylon", "Cotton"),
    "Hooded Coat": ("Wool", "Nylon", "Waxed Cotton", "Boucle"),
    "Duffle Coat": ("Wool", "Tweed"),
    "Overcoat": ("Wool", "Cashmere", "Tweed", "Boucle"),
    "Balmacaan Coat": ("Wool", "Tweed", "Gabardine", "Cotton"),
    "Rain Jacket": ("Nylon", "Ripstop", "Waxed Cotton"),
    "Anorak Jacket": ("Nylon", "Ripstop"),
    "Windbreaker Jacket": ("Nylon", "Ripstop"),
    "Quilted Jacket": ("Nylon", "Cotton", "Waxed Cotton"),
    "Aviator Jacket": ("Shearling", "Leather", "Suede"),
    "Biker Jacket": ("Leather", "Suede", "Denim"),
    "Trucker Jacket": ("Denim", "Corduroy", "Suede"),
    "Bolero Jacket": ("Leather", "Suede", "Sequined"),
    "Harrington Jacket": ("Cotton", "Twill", "Nylon"),
    "Field Jacket": ("Waxed Cotton", "Canvas", "Twill"),
    "Tuxedo Suit": ("Wool", "Velvet", "Satin", "Crepe"),
    "Tuxedo Blazer": ("Wool", "Velvet", "Satin", "Crepe"),
    "Tuxedo Trousers": ("Wool", "Crepe", "Satin", "Velvet"),
    "Tuxedo Shirt": ("Cotton", "Poplin", "Silk"),
    "Boiler Suit": ("Denim", "Twill", "Cotton", "Linen"),
    "Utility Jumpsuit": ("Twill", "Cotton", "Denim", "Linen"),
    "Slip Dress": ("Silk", "Satin", "Crepe", "Velvet"),
    "Slip Skirt": ("Silk", "Satin", "Crepe", "Velvet"),
    "Camisole": ("Silk", "Satin", "Lace", "Jersey"),
    "Corset Top": ("Satin", "Lace", "Leather", "Velvet", "Cotton"),
    "Bustier Top": ("Satin", "Lace", "Leather", "Velvet", "Cotton"),
    "Sheer Shirt": ("Chiffon", "Silk"),
    "Ruffled Blouse": ("Silk", "Chiffon", "Crepe", "Cotton"),
    "Pussy-Bow Blouse": ("Silk", "Chiffon", "Crepe", "Satin"),
    "Oxford Shirt": ("Cotton", "Linen", "Flannel"),
    "Boxy Tee": ("Cotton", "Jersey", "Linen"),
    "Tank Top": ("Cotton", "Ribbed", "Jersey", "Linen", "Silk"),
    "Fisherman Sweater": ("Wool", "Merino", "Cotton", "Alpaca"),
    "Cable-Knit Sweater": ("Wool", "Merino", "Cotton", "Cashmere"),
    "Fine-Gauge Turtleneck": ("Merino", "Cashmere", "Cotton"),
    "Chunky Cardigan": ("Wool", "Mohair", "Alpaca"),
    "Running Set": ("Nylon", "Tech Jersey", "Mesh"),
    "Yoga Set": ("Tech Jersey", "Ribbed", "Cotton"),
    "Track Suit": ("Nylon", "Cotton", "Fleece", "Tech Jersey"),
    "Zip-Up Track Set": ("Nylon", "Fleece", "Tech Jersey"),
    "Cargo Trousers": ("Cotton", "Twill", "Nylon", "Ripstop", "Linen"),
    "Cargo Shorts": ("Cotton", "Twill", "Nylon", "Ripstop"),
    "Palazzo Trousers": ("Silk", "Satin", "Crepe", "Linen", "Wool"),
    "Sundress": ("Linen", "Cotton", "Poplin", "Chiffon"),
    "Tiered Maxi Dress": ("Linen", "Cotton", "Chiffon", "Silk"),
}

WEATHER_MATERIALS: dict[str, frozenset[str]] = {
    "Sunny": frozenset(
        {"Linen", "Cotton", "Silk", "Seersucker", "Poplin", "Chambray", "Chiffon", "Mesh", "Jersey", "Washed", "Crepe"}
    ),
    "Windy": frozenset(
        {
            "Denim",
            "Twill",
            "Canvas",
            "Corduroy",
            "Leather",
            "Suede",
            "Merino",
            "Nylon",
            "Boucle",
            "Rigid",
            "Selvedge",
            "Gabardine",
        }
    ),
    "Rainy": frozenset(
        {"Gabardine", "Nylon", "Waxed Cotton", "Ripstop", "Coated", "Twill", "Wool", "Merino", "Leather"}
    ),
    "Cold": frozenset(
        {
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
    ),
}
# Materials that would be wrong for the day (never chosen unless nothing else fits).
WEATHER_AVOID: dict[str, frozenset[str]] = {
    "Sunny": frozenset(
        {
            "Wool",
            "Cashmere",
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
        }
    ),
    "Windy": frozenset({"Chiffon", "Mesh"}),
    "Rainy": frozenset({"Suede", "Silk", "Linen", "Chiffon", "Seersucker", "Satin", "Velvet"}),
    "Cold": frozenset({"Linen", "Seersucker", "Chiffon", "Mesh", "Chambray", "Washed"}),
}
DRESSY_MATERIALS = frozenset(
    {"Silk", "Satin", "Velvet", "Sequined", "Lace", "Leather", "Crepe", "Chiffon", "Cashmere", "Lurex"}
)

# -- archetypes: signature categories, materials and accent pieces -------------------

ARCHETYPE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "Minimal": ("Trousers", "Shirt", "Coat", "Suit"),
    "Classic": ("Blazer", "Coat", "Shirt", "Trousers"),
    "Casual": ("Jeans", "Knitwear", "Top", "Shirt"),
    "Streetwear": ("Jacket", "Jeans", "Activewear", "Top"),
    "Bohemian": ("Dress", "Skirt", "Knitwear", "Top"),
    "Romantic": ("Dress", "Skirt", "Top", "Knitwear"),
    "Edgy": ("Jacket", "Jeans", "Trousers", "Dress"),
    "Sporty": ("Activewear", "Shorts", "Jacket", "Top"),
    "Preppy": ("Blazer", "Knitwear", "Skirt", "Shirt"),
    "Glam": ("Dress", "Jumpsuit", "Suit", "Top"),
}
ARCHETYPE_MATERIALS: dict[str, frozenset[str]] = {
    "Minimal": frozenset({"Crepe", "Poplin", "Wool", "Cotton", "Cashmere"}),
    "Classic": frozenset({"Wool", "Silk", "Cashmere", "Gabardine", "Tweed"}),
    "Casual": frozenset({"Cotton", "Jersey", "Denim", "Washed", "Chambray"}),
    "Streetwear": frozenset({"Nylon", "Denim", "Fleece", "Ripstop", "Canvas"}),
    "Bohemian": frozenset({"Suede", "Linen", "Lace", "Chiffon", "Corduroy"}),
    "Romantic": frozenset({"Lace", "Chiffon", "Silk", "Satin", "Mohair"}),
    "Edgy": frozenset({"Leather", "Coated", "Mesh", "Denim", "Velvet"}),
    "Sporty": frozenset({"Nylon", "Tech Jersey", "Mesh", "Ripstop", "Fleece"}),
    "Preppy": frozenset({"Tweed", "Poplin", "Merino", "Seersucker", "Flannel"}),
    "Glam": frozenset({"Sequined", "Satin", "Velvet", "Lurex", "Silk"}),
}
# Palettes as in the seed data; the cluster's own top_colors weigh more.
ARCHETYPE_COLORS: dict[str, frozenset[str]] = {
    "Minimal": frozenset({"Black", "White", "Beige", "Grey", "Navy", "Ivory"}),
    "Classic": frozenset({"Navy", "Camel", "White", "Black", "Burgundy"}),
    "Casual": frozenset({"Blue", "White", "Grey", "Olive", "Navy"}),
    "Streetwear": frozenset({"Black", "Orange", "Olive", "Grey", "Red"}),
    "Bohemian": frozenset({"Brown", "Olive", "Orange", "Ivory", "Camel"}),
    "Romantic": frozenset({"Pink", "Lavender", "Ivory", "Red", "White"}),
    "Edgy": frozenset({"Black", "Burgundy", "Silver", "Grey", "Red"}),
    "Sporty": frozenset({"Black", "Blue", "White", "Green", "Grey"}),
    "Preppy": frozenset({"Navy", "Green", "White", "Red", "Camel"}),
    "Glam": frozenset({"Gold", "Silver", "Black", "Red", "Burgundy"}),
}
ARCHETYPE_ACCENTS: dict[str, tuple[str, ...]] = {
    "Minimal": ("Slim Leather Belt", "Minimal Silver Cuff", "Thin Gold Chain"),
    "Classic": ("Pearl Studs", "Silk Square Scarf", "Gold Watch"),
    "Casual": ("Baseball Cap", "Everyday Watch", "Cotton Bandana"),
    "Streetwear": ("Logo Cap", "Chain Wallet", "Tube Socks"),
    "Bohemian": ("Layered Beaded Necklaces", "Wide-Brim Felt Hat", "Stacked Bangles"),
    "Romantic": ("Ribbon Hair Bow", "Pearl Drop Earrings", "Floral Silk Scarf"),
    "Edgy": ("Studded Leather Belt", "Chain Necklace", "Silver Ear Cuffs"),
    "Sporty": ("Sport Sunglasses", "Sweatband Cap", "Smart Watch"),
    "Preppy": ("Striped Silk Headband", "Signet Ring", "Argyle Socks"),
    "Glam": ("Crystal Drop Earrings", "Cocktail Ring", "Rhinestone Hair Clip"),
}
# Offered alongside the daypart's bags, and alongside the weather's shoes when
# the weather allows open or light shoes.
ARCHETYPE_BAGS: dict[str, str] = {
    "Minimal": "Structured Leather Tote",
    "Classic": "Leather Top-Handle Bag",
    "Casual": "Canvas Backpack",
    "Streetwear": "Nylon Crossbody Bag",
    "Bohemian": "Fringed Suede Bag",
    "Romantic": "Quilted Mini Bag",
    "Edgy": "Studded Shoulder Bag",
    "Sporty": "Nylon Belt Bag",
    "Preppy": "Leather Satchel",
    "Glam": "Metallic Clutch",
}
ARCHETYPE_SHOES: dict[str, str] = {
    "Minimal": "Square-Toe Leather Mules",
    "Classic": "Leather Ballet Pumps",
    "Casual": "Leather Sneakers",
    "Streetwear": "Chunky Sneakers",
    "Bohemian": "Woven Leather Sandals",
    "Romantic": "Ballet Flats",
    "Edgy": "Combat Boots",
    "Sporty": "Running Sneakers",
    "Preppy": "Penny Loafers",
    "Glam": "Strappy Stiletto Sandals",
}
SHOE_FRIENDLY_WEATHER = ("Sunny", "Windy")

# -- complementary pieces by weather and daypart ---------------------------------

SHOES: dict[str, dict[str, tuple[str, ...]]] = {
    "Sunny": {
        "Daytime": ("Leather Slide Sandals", "White Canvas Sneakers", "Espadrilles", "Woven Loafers"),
        "NightOut": ("Strappy Heeled Sandals", "Kitten-Heel Mules", "Metallic Flat Sandals"),
    },
    "Windy": {
        "Daytime": ("Chelsea Boots", "Leather Loafers", "Low-Top Sneakers"),
        "NightOut": ("Slingback Pumps", "Pointed Ankle Boots", "Block-Heel Loafers"),
    },
    "Rainy": {
        "Daytime": ("Rubber Rain Boots", "Lug-Sole Chelsea Boots", "Waterproof Sneakers"),
        "NightOut": ("Patent Ankle Boots", "Block-Heel Boots", "Patent Pumps"),
    },
    "Cold": {
        "Daytime": ("Shearling-Lined Boots", "Lug-Sole Boots", "Suede Ankle Boots"),
        "NightOut": ("Knee-High Heeled Boots", "Velvet Pumps", "Heeled Ankle Boots"),
    },
}
OUTER_LAYERS: dict[str, dict[str, tuple[str, ...]]] = {
    "Sunny": {
        "Daytime": ("Light Linen Overshirt", "Cropped Cotton Cardigan"),
        "NightOut": ("Silk Kimono Jacket", "Cropped Cotton Cardigan"),
    },
    "Windy": {
        "Daytime": ("Denim Jacket", "Light Bomber Jacket", "Funnel-Neck Jacket"),
        "NightOut": ("Structured Blazer", "Cropped Leather Jacket"),
    },
    "Rainy": {
        "Daytime": ("Belted Trench Coat", "Hooded Rain Jacket", "Waxed Cotton Jacket"),
        "NightOut": ("Belted Trench Coat", "Patent Trench Coat"),
    },
    "Cold": {
        "Daytime": ("Long Wool Coat", "Puffer Jacket", "Shearling Aviator Jacket"),
        "NightOut": ("Long Wool Coat", "Faux-Fur Jacket", "Velvet-Collar Overcoat"),
    },
}
ACCESSORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "Sunny": {
        "Daytime": ("Tortoiseshell Sunglasses", "Straw Sun Hat", "Silk Bandana"),
        "NightOut": ("Gold Hoop Earrings", "Layered Gold Necklaces", "Silk Hair Scarf"),
    },
    "Windy": {
        "Daytime": ("Silk Neck Scarf", "Wool Flat Cap", "Leather Gloves"),
        "NightOut": ("Silk Neck Scarf", "Statement Earrings", "Slim Leather Gloves"),
    },
    "Rainy": {
        "Daytime": ("Compact Umbrella", "Bucket Hat", "Silk Neck Scarf"),
        "NightOut": ("Compact Umbrella", "Statement Earrings", "Sleek Hair Clip"),
    },
    "Cold": {
        "Daytime": ("Cashmere Scarf", "Ribbed Beanie", "Leather Gloves"),
        "NightOut": ("Cashmere Scarf", "Opera Gloves", "Statement Earrings"),
    },
}
BAGS: dict[str, tuple[str, ...]] = {
    "Daytime": ("Canvas Tote", "Leather Crossbody Bag", "Shoulder Bag", "Bucket Bag"),
    "NightOut": ("Beaded Clutch", "Chain-Strap Mini Bag", "Satin Clutch", "Baguette Bag"),
}
TOPS: dict[str, tuple[str, ...]] = {
    "Daytime": ("White Cotton Tee", "Striped Breton Top", "Fine-Knit Crewneck", "Crisp Poplin Shirt"),
    "NightOut": ("Black Silk Camisole", "Fitted Bodysuit", "Sheer Mesh Top", "Satin Blouse"),
}
BOTTOMS: dict[str, tuple[str, ...]] = {
    "Daytime": ("Straight-Leg Jeans", "Tailored Trousers", "Wide-Leg Trousers", "Pleated Midi Skirt"),
    "NightOut": ("Black Cigarette Trousers", "Satin Slip Skirt", "Leather Mini Skirt", "Dark Flared Jeans"),
}

# -- colors and categories: how weather and daypart weigh them -------------------------

WEATHER_COLORS: dict[str, frozenset[str]] = {
    "Sunny": frozenset({"White", "Ivory", "Beige", "Yellow", "Blue", "Pink", "Lavender", "Orange"}),
    "Windy": frozenset({"Navy", "Grey", "Olive", "Blue", "Camel", "White"}),
    "Rainy": frozenset({"Navy", "Olive", "Black", "Beige", "Yellow", "Grey"}),
    "Cold": frozenset({"Camel", "Brown", "Grey", "Burgundy", "Navy", "Black", "Olive", "Ivory"}),
}
NIGHT_COLORS = frozenset({"Black", "Navy", "Burgundy", "Silver", "Gold", "Red", "Purple"})
DAY_COLORS = frozenset(
    {"White", "Ivory", "Beige", "Camel", "Blue", "Olive", "Yellow", "Pink", "Lavender", "Green", "Grey"}
)

# weather -> weight by warmth 0..3
WARMTH_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "Sunny": (3.0, 2.5, 0.8, 0.1),
    "Windy": (0.6, 1.0, 1.8, 1.4),
    "Rainy": (0.4, 1.0, 1.5, 2.0),
    "Cold": (0.1, 0.5, 1.6, 3.0),
}
WEATHER_CATEGORY_BONUS: dict[str, dict[str, float]] = {
    "Windy": {"Jacket": 1.5, "Blazer": 1.3},
    "Rainy": {"Coat": 1.5, "Jacket": 1.5, "Shorts": 0.5},
    "Cold": {"Knitwear": 1.8, "Shorts": 0.3},
}
DAYPART_CATEGORY_BONUS: dict[str, dict[str, float]] = {
    "Daytime": {
        "Jeans": 1.5,
        "Trousers": 1.3,
        "Shirt": 1.4,
        "Knitwear": 1.3,
        "Activewear": 1.5,
        "Shorts": 1.3,
        "Jacket": 1.2,
    },
    "NightOut": {
        "Dress": 2.0,
        "Jumpsuit": 1.8,
        "Suit": 1.5,
        "Blazer": 1.4,
        "Top": 1.4,
        "Skirt": 1.3,
        "Activewear": 0.3,
        "Shorts": 0.5,
    },
}

# -- reasons: one line naming the weather and the archetype ----------------------------
# {g} is the hero garment ("linen midi skirt"), {w} the weather adjective
# ("sun-ready"), {when} "day" or "night out", {a} the archetype adjective,
# {an} its article, {k} one of the archetype's keywords.  A clause that makes
# a claim about the fabric ("breathable", "insulating") is only used when the
# material really is one the weather prefers; otherwise a neutral one is.

WEATHER_CLAUSES: dict[str, tuple[str, ...]] = {
    "Sunny": ("Breathable {g} for a {w} {when}", "Light {g} to stay cool on a {w} {when}"),
    "Windy": ("Structured {g}, built for a {w} {when}", "Sturdy {g} for a {w} {when}"),
    "Rainy": ("Shower-proof {g} for a {w} {when}", "Weather-tough {g} for a {w} {when}"),
    "Cold": ("Warm {g}, layered up for a {w} {when}", "Insulating {g} for a {w} {when}"),
}
NEUTRAL_CLAUSES = ("{G} for a {w} {when}", "{G}, picked for a {w} {when}")
ARCHETYPE_CLAUSES = (
    ", kept {a} with {k} styling.",
    ", styled {a} from head to toe.",
    " with {an} {a}, {k} edge.",
)
MAX_REASON = 159


class OfflineStylist:
    """Stylist protocol (batch.types.Stylist) without a network or a bill."""

    name = "offline"
    model = "ootd-offline-stylist-1"

    def generate(
        self, cluster: Cluster, vocabulary: Vocabulary, feedback: str | None = None
    ) -> tuple[list[dict[str, Any]], Usage]:
        """20 outfits (10 Daytime, then 10 NightOut) for the cluster.

        `feedback` (the validation error of a previous attempt) is accepted for
        the protocol and ignored: the offline stylist is deterministic and its
        output always validates (it never uses one of the cluster's
        `avoid_titles`), so a retry simply generates the same pool.
        """
        del feedback
        return _PoolBuilder(cluster, vocabulary).build(), Usage(0, 0)


def cluster_rng(cluster_id: str) -> random.Random:
    """A generator seeded from the cluster id, which starts with the pool date (BLAKE2b, stable
    across processes): the same pool for a cluster and date, another one the next day."""
    digest = hashlib.blake2b(cluster_id.encode(), digest_size=16, person=b"ootd-stylist").digest()
    return random.Random(int.from_bytes(digest, "big"))


class _PoolBuilder:
    """One pool's worth of state: the generator and what has been used so far."""

    def __init__(self, cluster: Cluster, vocabulary: Vocabulary) -> None:
        if not vocabulary.categories or not vocabulary.colors:
            raise ValueError("vocabulary needs at least one category and one color")
        self.cluster = cluster
        self.weather = cluster.weather
        self.rng = cluster_rng(cluster.cluster_id)
        self.categories = list(dict.fromkeys(vocabulary.categories))
        self.colors = list(dict.fromkeys(vocabulary.colors))
        self.category_count = dict.fromkeys(self.categories, 0)
        self.color_count = dict.fromkeys(self.colors, 0)
        # Caps keep the pool diverse; they grow only when the vocabulary is too small for 20.
        self.category_cap = max(MAX_PER_CATEGORY, math.ceil(POOL_SIZE / len(self.categories)))
        self.color_cap = max(MAX_PER_COLOR, math.ceil(POOL_SIZE / len(self.colors)))
        self.titles: set[str] = set()
        self.avoid = {title_key(t) for t in cluster.avoid_titles}  # as validation compares
        self.liked = [c for c in cluster.top_liked_categories if c in self.category_count]
        self.favourite_colors = [c for c in cluster.top_colors if c in self.color_count]
        self.palette = ARCHETYPE_COLORS.get(cluster.archetype, frozenset()) | set(self.favourite_colors)

    def build(self) -> list[dict[str, Any]]:
        return [
            self.outfit(daypart, favoured=slot % FAVOURED_EVERY == 0)
            for daypart in DAYPARTS
            for slot in range(PER_DAYPART)
        ]

    def outfit(self, daypart: str, favoured: bool) -> dict[str, Any]:
        category = self.pick_category(daypart, favoured)
        color = self.pick_color(daypart, favoured)
        noun = self.pick_noun(category, daypart)
        material = self.pick_material(category, noun, daypart)
        if self.taken(f"{color} {material} {noun}"):
            color, material, noun = self.fresh_title(category, daypart, color, favoured)
        title = f"{color} {material} {noun}"
        self.titles.add(title)
        self.category_count[category] += 1
        self.color_count[color] += 1
        night = daypart == "NightOut"
        return {
            "title": title,
            "daypart": daypart,
            "category": category,
            "color": color,
            "pieces": self.pieces(title, category, daypart),
            "vibe": self.trait(self.cluster.mean_vibe, 0.05 if night else 0.0),
            "trend": self.trait(self.cluster.mean_trend, 0.0),
            "dare": self.trait(self.cluster.mean_dare, 0.08 if night else -0.04),
            "reason": self.reason(material, noun, daypart),
        }

    # -- category and color ---------------------------------------------------------

    def pick_category(self, daypart: str, favoured: bool) -> str:
        """Favoured slots draw from the cluster's liked categories (while under the cap)."""
        open_ = [c for c in self.categories if self.category_count[c] < self.category_cap]
        liked = [c for c in self.liked if c in open_]
        pool = liked if favoured and liked else open_
        return self.weighted(pool, [self.category_weight(c, daypart) for c in pool])

    def category_weight(self, category: str, daypart: str) -> float:
        warmth = CATEGORIES.get(category, ("one-piece", 1))[1]
        weight = WARMTH_WEIGHTS.get(self.weather, (1.0, 1.0, 1.0, 1.0))[warmth]
        weight *= WEATHER_CATEGORY_BONUS.get(self.weather, {}).get(category, 1.0)
        weight *= DAYPART_CATEGORY_BONUS[daypart].get(category, 1.0)
        if category in ARCHETYPE_CATEGORIES.get(self.cluster.archetype, ()):
            weight *= 1.8
        if category in self.liked:
            weight *= 1.5
        if category in self.cluster.common_vetoes:
            weight *= 0.4  # still offered: most members did not veto it
        return weight / (1 + self.category_count[category])  # each repeat is less likely

    def pick_color(self, daypart: str, favoured: bool) -> str:
        """Favoured slots take one of the cluster's top colors (the most common most often)."""
        open_ = [c for c in self.colors if self.color_count[c] < self.color_cap]
        favourites = [c for c in self.favourite_colors if c in open_]
        if favoured and favourites:
            rank = {c: i for i, c in enumerate(self.favourite_colors)}
            return self.weighted(favourites, [(1 + rank[c]) ** -0.5 for c in favourites])
        return self.weighted(open_, [self.color_weight(c, daypart) for c in open_])

    def color_weight(self, color: str, daypart: str) -> float:
        weight = 1.0
        if color in self.palette:
            weight *= 3.0
        if color in WEATHER_COLORS.get(self.weather, ()):
            weight *= 1.8
        if color in (NIGHT_COLORS if daypart == "NightOut" else DAY_COLORS):
            weight *= 2.0
        if color in self.cluster.common_color_vetoes:
            weight *= 0.3
        return weight / (1 + self.color_count[color])

    # -- garment and material ---------------------------------------------------------

    def pick_noun(self, category: str, daypart: str) -> str:
        """Mostly the daypart's garments; the weather's own (trench, puffer...) some of the time."""
        special = WEATHER_NOUNS.get(self.weather, {}).get(category, ())
        if special and self.rng.random() < (0.4 if daypart == "Daytime" else 0.15):
            return self.rng.choice(special)
        return self.rng.choice(self.nouns(category, daypart))

    @staticmethod
    def nouns(category: str, daypart: str) -> tuple[str, ...]:
        """A category we have no garments for is its own noun ("Navy Wool Cape")."""
        return NOUNS.get(category, {}).get(daypart, (category,))

    def pick_material(self, category: str, noun: str, daypart: str) -> str:
        options = self.materials(category, noun)
        preferred = WEATHER_MATERIALS.get(self.weather, frozenset())
        signature = ARCHETYPE_MATERIALS.get(self.cluster.archetype, frozenset())
        night = daypart == "NightOut"
        weights = [
            1.0 + 6.0 * (m in preferred) + 2.0 * (m in signature) + 2.0 * (night and m in DRESSY_MATERIALS)
            for m in options
        ]
        return self.weighted(options, weights)

    def materials(self, category: str, noun: str) -> list[str]:
        """What the garment comes in, minus what is wrong for the weather (unless nothing is left)."""
        options = NOUN_MATERIALS.get(noun) or CATEGORY_MATERIALS.get(category, GENERIC_MATERIALS)
        avoid = WEATHER_AVOID.get(self.weather, frozenset())
        return [m for m in options if m not in avoid] or list(options)

    def taken(self, title: str) -> bool:
        """In this pool already, or in another pool within 3 days."""
        return title in self.titles or title_key(title) in self.avoid

    def fresh_title(self, category: str, daypart: str, color: str, favoured: bool) -> tuple[str, str, str]:
        """A title that is not taken: with titles to avoid, the garment and material are
        redrawn a few times, then the color too (keeping the pool's weighting); else the
        first free one."""
        if self.avoid:
            for redraw in range(2 * REDRAWS):
                drawn = color if redraw < REDRAWS else self.pick_color(daypart, favoured)
                noun = self.pick_noun(category, daypart)
                material = self.pick_material(category, noun, daypart)
                if not self.taken(f"{drawn} {material} {noun}"):
                    return drawn, material, noun
        return self.unused_title(category, daypart, color)

    def unused_title(self, category: str, daypart: str, color: str) -> tuple[str, str, str]:
        """First free (color, material, noun), the drawn color first: resolves a rare collision.
        A title of the last 3 days is reused only when nothing else is left (tiny vocabularies)."""
        nouns = self.nouns(category, daypart) + WEATHER_NOUNS.get(self.weather, {}).get(category, ())
        for fresh_only in (True, False):
            for c in [color] + [c for c in self.colors if c != color]:
                for n in nouns:
                    for m in self.materials(category, n):
                        title = f"{c} {m} {n}"
                        if title not in self.titles and not (fresh_only and title_key(title) in self.avoid):
                            return c, m, n
        # Only a vocabulary of one or two colors and unknown categories gets here.
        raise ValueError(f"vocabulary too small for {POOL_SIZE} distinct titles ({category})")

    # -- the rest of the outfit ----------------------------------------------------------

    def pieces(self, title: str, category: str, daypart: str) -> list[str]:
        """Hero first, then what completes it: the missing half (top or bottom),
        shoes, an outer layer when the weather asks for one, then a bag and
        accents; 2 to 6 in all."""
        garment = CATEGORIES.get(category, ("one-piece", 1))[0]
        weather = self.weather if self.weather in SHOES else "Windy"
        archetype = self.cluster.archetype
        rng = self.rng
        items = [title]
        if garment in ("bottom", "outerwear"):
            items.append(rng.choice(TOPS[daypart]))
        if garment in ("top", "outerwear"):
            items.append(rng.choice(BOTTOMS[daypart]))
        shoes = SHOES[weather][daypart]
        if archetype in ARCHETYPE_SHOES and weather in SHOE_FRIENDLY_WEATHER:
            shoes += (ARCHETYPE_SHOES[archetype],)
        items.append(rng.choice(shoes))
        if garment != "outerwear" and (weather in ("Rainy", "Cold") or rng.random() < 0.4):
            items.append(rng.choice(OUTER_LAYERS[weather][daypart]))
        bags = BAGS[daypart] + ((ARCHETYPE_BAGS[archetype],) if archetype in ARCHETYPE_BAGS else ())
        extras = [rng.choice(bags), rng.choice(ACCESSORIES[weather][daypart])]
        if archetype in ARCHETYPE_ACCENTS:
            extras.append(rng.choice(ARCHETYPE_ACCENTS[archetype]))
        rng.shuffle(extras)
        return items + extras[: max(0, 6 - len(items))]

    def weighted(self, items: Sequence[str], weights: Sequence[float]) -> str:
        return self.rng.choices(items, weights=weights, k=1)[0]

    def trait(self, mean: float, shift: float) -> float:
        """A 0..1 score scattered around the cluster's mean."""
        return round(min(max(self.rng.gauss(mean + shift, _SPREAD), 0.0), 1.0), 2)

    def reason(self, material: str, noun: str, daypart: str) -> str:
        """One line: the weather clause, then the archetype clause (under 160 chars)."""
        cluster = self.cluster
        garment = f"{material} {noun}".lower()
        adjective = cluster.archetype_adjective or cluster.archetype.lower()
        words = dict(
            g=garment,
            G=garment[:1].upper() + garment[1:],
            w=cluster.weather_adjective or self.weather.lower(),
            when="night out" if daypart == "NightOut" else "day",
            a=adjective,
            an="an" if adjective[:1] in tuple("aeiou") else "a",
            k=self.rng.choice(cluster.archetype_keywords or ("considered",)),
        )
        suits_weather = material in WEATHER_MATERIALS.get(self.weather, frozenset())
        clauses = WEATHER_CLAUSES.get(self.weather) if suits_weather else None
        text = self.rng.choice(clauses or NEUTRAL_CLAUSES).format(**words) + self.rng.choice(ARCHETYPE_CLAUSES).format(
            **words
        )
        if len(text) > MAX_REASON:  # only with unusually long vocabulary names
            text = NEUTRAL_CLAUSES[0].format(**words) + ARCHETYPE_CLAUSES[1].format(**words)
        return " ".join(text.split())[:MAX_REASON]
