"""The simulator page in a real headless Chromium, served by a running `ootd serve`.

What a person does on the page, and what they must see: the 15:00 switch to NightOut with its
headline, a veto striking items through and sending them last, a weight moving items, a real user's
page equal to that user's feed (with that user's token), and a page that fits a phone.
"""

from __future__ import annotations

import json
import math
import os
import struct
import urllib.request
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from db import REPO_ROOT
from tests.conftest import run_cli

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = REPO_ROOT / "docs" / "simulator.png"
MAX_SCREENSHOT_BYTES = 200_000

ITEMS_JS = """els => els.map(e => ({
    id: Number(e.dataset.outfitId), rank: e.dataset.rank === '' ? null : Number(e.dataset.rank),
    category: e.dataset.category, color: e.dataset.color, daypart: e.dataset.daypart,
    vetoed: e.classList.contains('vetoed'), move: e.querySelector('.move').textContent,
    struck: getComputedStyle(e.querySelector('.title')).textDecorationLine.includes('line-through'),
}))"""


def seq(page) -> int:
    return int(page.get_attribute("#ranking", "data-seq"))


def after(page, action) -> None:
    """Do `action` and wait until the ranking it causes is drawn."""
    before = seq(page)
    action()
    # functions, not expression strings: those would need eval(), which the page's CSP forbids
    page.wait_for_function("n => Number(document.getElementById('ranking').dataset.seq) > n", arg=before)
    settle(page)


def settle(page, quiet_ms: int = 250) -> None:
    """Wait until no ranking is drawn for `quiet_ms` (longer than the page's 80 ms debounce): a run that an
    earlier input scheduled may otherwise finish after the one an `after` waited for, and draw last."""
    while True:
        page.wait_for_function("() => document.body.dataset.state === 'idle'")
        drawn = seq(page)
        page.wait_for_timeout(quiet_ms)
        if seq(page) == drawn and page.evaluate("() => document.body.dataset.state") == "idle":
            return


def no_token_answered(page) -> None:
    """Wait until the real user's request sent before a token was typed has been answered (401, shown), and
    nothing else is drawing: a late 401 would otherwise replace the answer to the token's request."""
    page.wait_for_function("() => document.getElementById('error').innerText.includes('missing bearer token')")
    settle(page)


def load(page, base: str) -> None:
    page.goto(base + "/simulator")
    page.wait_for_function("() => Number(document.getElementById('ranking').dataset.seq) >= 1")
    assert page.is_hidden("#error"), page.inner_text("#error")


def items(page) -> list[dict]:
    return page.eval_on_selector_all("#ranking li", ITEMS_JS)


def open_group(page, group: str) -> None:
    if page.get_attribute(f"#group-{group}", "open") is None:
        page.click(f"#group-{group} summary")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_the_page_loads_under_its_csp_and_ranks_every_candidate(page, served_app):
    response = page.goto(served_app["base"] + "/simulator")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_function("() => Number(document.getElementById('ranking').dataset.seq) >= 1")
    ranked = items(page)
    assert len(ranked) >= 20  # the served pool's 20 (and its same-weather neighbours' with neighbour_pools on)
    assert [i["rank"] for i in ranked] == list(range(1, len(ranked) + 1))  # the default profile vetoes nothing
    assert page.inner_text("#summary").startswith(f"{len(ranked)} candidates")
    assert page.inner_text("#llm-count") == "0"
    assert "Torrance" in page.inner_text("#headline")


def test_moving_the_time_from_14_59_to_15_00_puts_nightout_first_and_changes_the_headline(page, served_app):
    load(page, served_app["base"])
    assert page.input_value("#time") == "899" and page.inner_text("#time-out") == "14:59"
    before_headline = page.inner_text("#headline")
    before = items(page)
    assert before[0]["daypart"] == "Daytime"
    assert "afternoon" in before_headline

    page.focus("#time")
    after(page, lambda: page.keyboard.press("ArrowRight"))

    assert page.inner_text("#time-out") == "15:00"
    now = items(page)
    assert now[0]["daypart"] == "NightOut"
    assert all(i["daypart"] == "NightOut" for i in now[:3])  # the whole feed takes over
    headline = page.inner_text("#headline")
    assert headline != before_headline and "tonight" in headline
    assert "NightOut first" in page.inner_text("#meta")
    assert page.inner_text("#llm-count") == "0"


def test_vetoing_a_category_strikes_its_items_through_and_ranks_them_last(page, served_app):
    load(page, served_app["base"])
    category = items(page)[0]["category"]  # the top item's category
    open_group(page, "disliked_categories")
    after(page, lambda: page.check(f"#group-disliked_categories input[value='{category}']"))

    ranked = items(page)
    vetoed = [i for i in ranked if i["category"] == category]
    kept = [i for i in ranked if i["category"] != category]
    assert vetoed and kept
    assert all(i["vetoed"] and i["struck"] and i["rank"] is None for i in vetoed)
    assert not any(i["vetoed"] or i["struck"] for i in kept)
    assert ranked == kept + vetoed  # vetoed items come last
    assert [i["rank"] for i in kept] == list(range(1, len(kept) + 1))
    assert vetoed[0]["move"].startswith("▼")  # it was ranked before the change
    assert page.inner_text("#relaxed") == "Veto cascade: nothing relaxed"


def test_changing_a_weight_changes_the_order_and_marks_the_movements(page, served_app):
    load(page, served_app["base"])
    color = items(page)[7]["color"]  # an item well down the list
    open_group(page, "preferred_colors")
    after(page, lambda: page.check(f"#group-preferred_colors input[value='{color}']"))
    boosted = [i["id"] for i in items(page)]

    weight = "input[data-weight='preferred_color']"
    assert float(page.input_value(weight)) > 1
    after(page, lambda: page.fill(weight, "0.5"))  # preferring the color now halves its score

    ranked = items(page)
    order = [i["id"] for i in ranked]
    assert order != boosted
    moved_down = [i for i in ranked if i["color"] == color and i["move"].startswith("▼")]
    assert moved_down, ranked
    after(page, lambda: page.click("#reset-weights"))
    assert [i["id"] for i in items(page)] == boosted


ARCHETYPE_JS = """els => els.map(e => ({
    from: e.dataset.drawnFrom,
    archetype: [...e.querySelectorAll('.components div')].find(d => d.querySelector('dt').textContent === 'archetype')
        .querySelector('dd').textContent,
}))"""


def test_the_archetype_weight_keeps_the_profiles_archetype_first_and_the_headline_names_it(page, served_app):
    """Issue 27: the what-if profile's archetype (Minimal) is served first, each item shows its archetype
    multiplier, and the headline names the archetype served; at 0 the weight multiplies nothing."""
    load(page, served_app["base"])
    assert page.input_value("#archetype") == "Minimal"
    weight = "input[data-weight='archetype']"
    w = float(page.input_value(weight))
    assert w > 0
    shown = page.eval_on_selector_all("#ranking li", ARCHETYPE_JS)
    served = {i["from"] for i in shown if i["archetype"] != "×1.00"}
    assert len(served) == 1 and "_Minimal_" in next(iter(served)), shown  # only Minimal's pool is boosted
    assert all(i["from"] in served for i in shown[:3])  # and served first
    boost = f"×{1 + w * math.log(2):.2f}"
    assert {i["archetype"] for i in shown if i["from"] in served} == {boost}
    assert " minimalist look " in page.inner_text("#headline")

    after(page, lambda: page.fill(weight, "0"))
    assert {i["archetype"] for i in page.eval_on_selector_all("#ranking li", ARCHETYPE_JS)} == {"×1.00"}
    after(page, lambda: page.click("#reset-weights"))
    assert page.eval_on_selector_all("#ranking li", ARCHETYPE_JS) == shown


def test_a_real_user_with_their_token_sees_their_own_feed(page, served_app):
    token = run_cli("token", "7", env={"OOTD_HOME": str(served_app["home"]), "DATABASE_URL": served_app["url"]})
    assert token.returncode == 0, token.stderr
    load(page, served_app["base"])
    page.get_by_text("Real user", exact=True).click()
    page.fill("#user-id", "7")
    no_token_answered(page)  # its request (no token yet) is answered before the token is typed
    after(page, lambda: page.fill("#token", "not-a-token"))
    assert "malformed token" in page.inner_text("#error")

    after(page, lambda: page.fill("#token", token.stdout.strip()))
    assert page.is_hidden("#error"), page.inner_text("#error")
    local = page.inner_text("#meta").split(" in ")[0]  # "14:59"
    assert local == "14:59"
    shown = items(page)[:3]

    # the same instant through the feed API: the page showed exactly that user's feed
    body = json.loads(
        page.evaluate(
            """async ([id, token]) => {
                const r = await fetch(`/v1/users/${id}/simulate`, {method: 'POST',
                    headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`},
                    body: JSON.stringify({date: document.getElementById('pool-date').value, time: '14:59'})});
                return await r.text();
            }""",
            ["7", token.stdout.strip()],
        )
    )
    request = urllib.request.Request(
        f"{served_app['base']}/v1/users/7/feed?at={body['at']}",
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        feed = json.loads(response.read())
    assert [i["id"] for i in shown] == [i["outfit_id"] for i in feed["items"]]
    assert page.inner_text("#headline") == feed["headline"]


def test_a_real_user_s_experiment_variant_is_shown_while_an_experiment_runs(page, served_app):
    token = run_cli("token", "7", env={"OOTD_HOME": str(served_app["home"]), "DATABASE_URL": served_app["url"]})
    assert token.returncode == 0, token.stderr
    load(page, served_app["base"])
    assert page.inner_text("#variant") == "What-if profile: no experiment variant (the weights in force)"
    page.get_by_text("Real user", exact=True).click()
    page.fill("#user-id", "7")
    no_token_answered(page)  # its request (no token yet) is answered before the token is typed
    after(page, lambda: page.fill("#token", token.stdout.strip()))
    assert page.is_hidden("#error"), page.inner_text("#error")
    assert page.inner_text("#variant") == "No experiment running: the weights in force"
    assert page.get_attribute("#variant", "data-variant") == ""

    with psycopg.connect(served_app["url"], autocommit=True) as admin:
        admin.execute(
            "SELECT * FROM ootd.start_experiment('page_cosine_up', %s)",
            (Jsonb({"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}),),
        )
        try:
            variant = admin.execute("SELECT variant FROM ootd.experiment_of(7)").fetchone()[0]
            page.focus("#time")
            after(page, lambda: page.keyboard.press("ArrowRight"))  # any change re-ranks: the page reads it
            assert page.is_hidden("#error"), page.inner_text("#error")
            assert page.inner_text("#variant") == f"Experiment variant: {variant}"
            assert page.get_attribute("#variant", "data-variant") == variant
            assert "running" in page.get_attribute("#variant", "class")
            assert page.is_visible("#variant")

            after(page, lambda: page.get_by_text("What-if profile", exact=True).click())
            assert page.inner_text("#variant") == "What-if profile: no experiment variant (the weights in force)"
            after(page, lambda: page.get_by_text("Real user", exact=True).click())
            assert page.inner_text("#variant") == f"Experiment variant: {variant}"
        finally:
            admin.execute("SELECT * FROM ootd.end_experiment('page_cosine_up')")
    page.focus("#time")
    after(page, lambda: page.keyboard.press("ArrowLeft"))
    assert page.inner_text("#variant") == "No experiment running: the weights in force"


def test_the_page_fits_a_phone_and_a_screenshot_is_kept(page, served_app, artifacts):
    load(page, served_app["base"])
    open_group(page, "preferred_colors")  # a profile with some taste, so the scores differ
    for color in ("Black", "Navy"):
        after(page, lambda color=color: page.check(f"#group-preferred_colors input[value='{color}']"))
    page.click("#group-preferred_colors summary")
    open_group(page, "liked_categories")
    after(page, lambda: page.check("#group-liked_categories input[value='Blazer']"))
    page.click("#group-liked_categories summary")
    open_group(page, "disliked_categories")
    after(page, lambda: page.check("#group-disliked_categories input[value='Dress']"))
    page.focus("#time")
    after(page, lambda: page.keyboard.press("ArrowRight"))
    page.evaluate("document.activeElement.blur()")

    desktop = artifacts / "simulator-1280x800.png"
    page.screenshot(path=str(desktop), animations="disabled")
    assert png_size(desktop) == (1280, 800)
    if os.environ.get("OOTD_WRITE_DOCS_SCREENSHOT") == "1":  # refresh the README's picture
        DOCS_SCREENSHOT.write_bytes(desktop.read_bytes())
    assert desktop.stat().st_size < MAX_SCREENSHOT_BYTES

    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    assert page.evaluate("document.querySelector('.results').getBoundingClientRect().width") <= 375
    phone = artifacts / "simulator-375.png"
    page.screenshot(path=str(phone), full_page=True, animations="disabled")
    assert png_size(phone)[0] == 375
