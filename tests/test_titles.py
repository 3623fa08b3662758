"""No repeats across pools (issue 27, item 5).

A title is unique across every pool dated within 3 days of another
(ootd.taken_titles, ootd.store_pool's 23P01), because the feed may serve a
user their cluster's pool plus the same-weather neighbour pools of their date
(scoring_weights.neighbour_pools; the 30-day test serves with it on).
Proven here: 30 consecutive offline nightlies with no title twice and no user
served a title they were served the day before; concurrent stores; the LLM
path with a colliding answer (a taken title in the answer, and a title another
cluster of the run claimed meanwhile); re-runs that store nothing and
resumed runs that title identically.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import date, timedelta

import psycopg
import pytest

from batch.clusters import load_vocabulary
from batch.llm import OpenAIEmbedder, OpenAIStylist, make_client
from batch.nightly import NightlyConfig, generate_cluster, run_nightly
from batch.seed import seed_users
from batch.stylist_offline import OfflineStylist
from batch.titles import TakenTitles
from batch.types import Cluster
from db.connect import connect
from tests.fake_openai import FakeOpenAI, avoided_titles
from tests.test_nightly import DAY, FixedWeather, ledger, openai_run, store

USERS, SEED, DAYS = 200, 7, 30

WINDOW_REPEATS = """
    SELECT o.pool_date, o.cluster_id, o.title, b.pool_date, b.cluster_id
    FROM ootd.outfits o
    JOIN ootd.outfits b ON b.pool_date BETWEEN o.pool_date - 3 AND o.pool_date
                       AND ootd._title_key(b.title) = ootd._title_key(o.title) AND b.id <> o.id"""

# Each user opens the app once a day at a local hour of their own (06:00..21:00, both dayparts).
SERVED = """
    SELECT u.id, d::date AS day, f.title
    FROM ootd.users u
    CROSS JOIN generate_series(%s::date, %s::date, interval '1 day') d
    CROSS JOIN LATERAL ootd.feed(
        u.id, (d::date + make_interval(hours => 6 + abs(hashtext(u.id::text || d::date::text)) %% 16))
              AT TIME ZONE u.timezone, 3) f"""


@pytest.fixture
def small_url(db_url: str) -> str:
    with connect(db_url) as conn:
        seed_users(conn, USERS, SEED)
    return db_url


def start_day(url: str) -> date:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT current_date - 40").fetchone()[0]


def test_30_offline_nightlies_repeat_no_title_within_3_days_and_serve_no_one_yesterdays_items(small_url):
    first = start_day(small_url)
    started = time.perf_counter()
    clusters = 0
    for d in range(DAYS):
        report = run_nightly(small_url, NightlyConfig(day=first + timedelta(days=d), llm="offline"))
        assert report.failed == [] and report.stored == report.clusters > 10
        clusters += report.clusters
    nightly_s = time.perf_counter() - started
    with psycopg.connect(small_url) as conn:
        assert conn.execute(WINDOW_REPEATS).fetchall() == []
        assert conn.execute("SELECT count(*) FROM ootd.outfits").fetchone()[0] == 20 * clusters
        conn.execute("UPDATE ootd.scoring_weights SET neighbour_pools = true")  # other clusters' titles too
        started = time.perf_counter()
        served: dict[tuple[int, date], set[str]] = {}
        for user_id, day, title in conn.execute(SERVED, (first, first + timedelta(days=DAYS - 1))):
            served.setdefault((user_id, day), set()).add(title.casefold())
        feed_s = time.perf_counter() - started
    assert len(served) == USERS * DAYS and all(len(t) == 3 for t in served.values())
    repeats = [
        (user_id, day, titles & served[user_id, day - timedelta(days=1)])
        for (user_id, day), titles in served.items()
        if day > first and titles & served[user_id, day - timedelta(days=1)]
    ]
    assert repeats == []
    print(f"\n{DAYS} nightlies ({clusters} pools) in {nightly_s:.1f} s, {len(served)} feeds in {feed_s:.1f} s")


def test_rerun_stores_nothing_and_a_resumed_run_titles_identically(small_url, db_url_factory):
    first = start_day(small_url)
    days = [first + timedelta(days=d) for d in range(3)]
    for day in days:
        run_nightly(small_url, NightlyConfig(day=day, llm="offline"))
    with psycopg.connect(small_url) as conn:
        before = conn.execute("SELECT id, cluster_id, title FROM ootd.outfits ORDER BY id").fetchall()
    again = run_nightly(small_url, NightlyConfig(day=days[-1], llm="offline"))
    assert again.stored == 0 and again.skipped == again.clusters and again.chat_requests == 0
    with psycopg.connect(small_url) as conn:
        assert conn.execute("SELECT id, cluster_id, title FROM ootd.outfits ORDER BY id").fetchall() == before

    # Another database, same users: the last day is first run with every cluster after the 3rd
    # failing (as a killed run would leave it), then resumed.
    other = db_url_factory()
    with connect(other) as conn:
        seed_users(conn, USERS, SEED)
    for day in days[:-1]:
        run_nightly(other, NightlyConfig(day=day, llm="offline"))

    class FailingAfterThree(OfflineStylist):
        calls = 0

        def generate(self, cluster, vocabulary, feedback=None):
            self.calls += 1
            if self.calls > 3:
                raise RuntimeError("killed")
            return super().generate(cluster, vocabulary, feedback)

    partial = run_nightly(other, NightlyConfig(day=days[-1], llm="offline"), stylist=FailingAfterThree())
    assert partial.stored == 3 and len(partial.failed) == partial.clusters - 3
    resumed = run_nightly(other, NightlyConfig(day=days[-1], llm="offline"))
    assert resumed.stored == partial.clusters - 3
    query = "SELECT cluster_id, slot, title FROM ootd.outfits ORDER BY 1, 2"
    with psycopg.connect(small_url) as a, psycopg.connect(other) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


@pytest.fixture
def db_url_factory(pg_server, template_url):
    from tests.conftest import TEMPLATE, create_database, drop_database

    names: list[str] = []

    def make() -> str:
        names.append(create_database(pg_server, TEMPLATE))
        return pg_server.dsn(names[-1])

    yield make
    for name in names:
        drop_database(pg_server, name)


def titles(tag: str) -> list[str]:
    return [f"{tag} Dress {i:02}" for i in range(20)]


def test_concurrent_stores_of_one_title_one_wins_the_other_is_refused(db_url):
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        store(first, DAY, "Minimal", "Sunny", titles("Shared"))  # not committed yet: holds the store lock
        outcome: list[object] = []

        def other() -> None:
            try:
                store(second, DAY, "Glam", "Rainy", titles("Mine")[:19] + ["Shared Dress 07"])
                second.commit()
                outcome.append("stored")
            except psycopg.Error as exc:
                second.rollback()
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert outcome == []  # waiting for the first store's transaction
        first.commit()
        thread.join(10)
        assert isinstance(outcome[0], psycopg.errors.ExclusionViolation)
        assert '"Shared Dress 07" (outfit 20, in ' in str(outcome[0])

        # a store whose transaction rolls back takes nothing
        store(first, DAY, "Edgy", "Cold", titles("Gone"))
        outcome.clear()
        thread = threading.Thread(target=lambda: (store(second, DAY, "Edgy", "Windy", titles("Gone")), second.commit()))
        thread.start()
        time.sleep(0.3)
        first.rollback()
        thread.join(10)
        assert first.execute("SELECT count(*) FROM ootd.pools WHERE cluster_id LIKE %s", ("%_Edgy_%",)).fetchone() == (
            1,
        )

        second.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with pytest.raises(psycopg.errors.InvalidTransactionState, match="under REPEATABLE READ"):
            store(second, DAY, "Preppy", "Cold", titles("Late"))


def test_an_answer_repeating_another_clusters_title_is_retried(seeded_url):
    # Yesterday Rainy, today Sunny: no Sunny cluster has titles of its own to avoid, so the
    # first title its prompt lists is another cluster's (one of today's, stored earlier in the
    # run, or its archetype's Rainy one): what per-cluster avoidance let through.
    run_nightly(seeded_url, NightlyConfig(day=DAY - timedelta(days=1), llm="offline"), weather=FixedWeather("Rainy"))
    cluster = f"{DAY:%Y%m%d}_Edgy_Sunny"
    with FakeOpenAI() as fake:
        fake.plan("repeat_title", match=cluster)
        report = openai_run(seeded_url, fake, weather=FixedWeather("Sunny"), concurrency=1)
        requests = [r for r in fake.chat_requests() if cluster in r.user_text]
    assert report.failed == [] and [r.behaviour for r in requests] == ["repeat_title", "ok"]
    repeated = avoided_titles(requests[0].user_text)[0]
    assert "Your previous answer was rejected: titles already taken by other pools within 3 days: " in (
        requests[1].user_text
    )
    with psycopg.connect(seeded_url) as conn:
        holder = conn.execute("SELECT cluster_id FROM ootd.outfits WHERE title = %s", (repeated,)).fetchall()
        assert len(holder) == 1 and holder[0][0] != cluster and not holder[0][0].endswith("_Edgy_Sunny")
        assert ledger(conn, cluster)[:2] == [("chat", 1, "invalid", 200), ("chat", 2, "ok", 200)]
        assert conn.execute(WINDOW_REPEATS).fetchall() == []


def test_a_title_another_cluster_claimed_meanwhile_is_retried(seeded_url):
    """Clusters are generated concurrently: a title another cluster claimed after this prompt
    was written fails the claim, and is retried like invalid output."""
    with psycopg.connect(seeded_url, row_factory=psycopg.rows.dict_row) as conn:
        vocabulary = load_vocabulary(conn)
    cluster = Cluster(DAY, f"{DAY:%Y%m%d}_Minimal_Sunny", "Minimal", "minimalist", ("clean",), "Sunny", "sunny", (), 9)
    rival = replace(cluster, cluster_id=f"{DAY:%Y%m%d}_Glam_Sunny", archetype="Glam")
    taken = TakenTitles(DAY)
    with FakeOpenAI() as fake:
        client = make_client(10.0, base_url=fake.base_url, api_key="test-key")
        real = OpenAIStylist(client, "gpt-4o-mini")

        class Racing:
            name, model, stolen = "openai", "gpt-4o-mini", None

            def generate(self, c, vocabulary, feedback=None):
                content, usage = real.generate(c, vocabulary, feedback)
                if self.stolen is None:  # the rival's pool is accepted while this answer travels
                    self.stolen = json.loads(content)["outfits"][2]["title"]
                    assert taken.claim(rival, [self.stolen]) == []
                return content, usage

        stylist = Racing()
        config = NightlyConfig(day=DAY, llm="openai")
        outcome = generate_cluster(cluster, vocabulary, stylist, OpenAIEmbedder(client), config, None, taken)
        prompts = [r.user_text for r in fake.chat_requests()]
    assert outcome.status == "stored" and [a.status for a in outcome.attempts] == ["invalid", "ok", "ok"]
    assert outcome.attempts[0].error == (
        f'titles already taken by other pools within 3 days: "{stylist.stolen}" (outfit 3, in {rival.cluster_id}); '
        "every title must be new"
    )
    assert avoided_titles(prompts[0]) == [] and avoided_titles(prompts[1]) == [stylist.stolen]
    assert stylist.stolen not in {o["title"] for o in outcome.outfits}
    assert len(taken) == 21  # the rival's title and this pool's 20
