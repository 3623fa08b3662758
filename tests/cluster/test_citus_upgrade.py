"""Upgrading a distributed cluster: a coordinator distributed at 0014 (users, likes, pools), then
`ootd migrate` to head runs the new revisions with DDL propagation on and db/citus.sql places what
they added.  The data stays, every node ends with the head schema, and feeds serve variants as a
single node with the same data does.

The 0014 cluster is what 0014's `ootd migrate` made: `alembic upgrade 0014` with DDL propagation
off, then db/citus.sql without its one step that places tables of a later revision.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg.types.json import Jsonb

from batch.nightly import NightlyConfig, run_nightly
from batch.seed import seed_users
from cli.main import CommandError, migrate
from db.citus import LOCAL_DDL_OPTIONS, CitusCluster, distribute_steps
from db.connect import connect, sqlalchemy_url
from db.server import EmbeddedServer
from tests.conftest import TEMPLATE, create_database, drop_database

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 4, 20)
USERS = 600
SEED = 7
AT = f"{DAY} 09:00+00"
FEED = "SELECT * FROM ootd.feed(%s, %s, 3)"
SAMPLE = list(range(1, USERS + 1, 15))  # 40 users on both workers
LIKERS = SAMPLE[:6]
MEANS = ("vibe", "trend", "dare")
EXPERIMENT = {"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}
#: Every ootd function: signature, body, grants, owner, security, settings (compared node by node).
FUNCTIONS = (
    "SELECT p.oid::regprocedure::text, md5(p.prosrc), coalesce(p.proacl::text, ''), p.proowner::regrole::text, "
    "p.prosecdef, coalesce(p.proconfig::text, '') FROM pg_proc p WHERE p.pronamespace = 'ootd'::regnamespace ORDER BY 1"
)
#: The data an upgrade must keep, as text: users (the profiles of those without likes: 0017 re-learns
#: the likers, whose profiles are compared on their own), likes, pools.
DATA = (
    "SELECT (SELECT md5(string_agg(row(u.id, u.city, u.timezone, u.style_rules, u.created_at, u.likes_count, "
    "CASE WHEN u.likes_count = 0 THEN row(u.style_dna, u.taste, u.taste_norm) END)::text, '|' ORDER BY u.id)) "
    "FROM ootd.users u), "
    "(SELECT md5(string_agg(k::text, '|' ORDER BY k.user_id, k.outfit_id)) FROM ootd.likes k), "
    "(SELECT count(*) FROM ootd.likes), (SELECT md5(string_agg(o::text, '|' ORDER BY o.id)) FROM ootd.outfits o)"
)


def likes_of(user_id: int) -> int:
    return 1 + user_id // 15 % 5  # 1 to 5 likes each


def head() -> str:
    return ScriptDirectory.from_config(Config(str(REPO / "alembic.ini"))).get_current_head()


def prepare(url: str) -> None:
    """Seed SEED, the offline nightly of DAY (one request at a time: the same outfit ids everywhere),
    and a few likes through ootd.like (the same profiles everywhere)."""
    with connect(url) as conn:
        seed_users(conn, USERS, SEED)
    assert run_nightly(url, NightlyConfig(day=DAY, llm="offline", concurrency=1)).failed == []
    with psycopg.connect(url, autocommit=True) as conn:
        outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 5").fetchall()]
        for user_id in LIKERS:
            for outfit_id in outfits[: likes_of(user_id)]:
                assert conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone() == (True,)


#: What db/citus.sql places that revisions after 0014 add.
LATER_OBJECTS = ("'ootd.experiments'", "'ootd.api_token_generations'", "'ootd.token_generation(bigint)'")


@pytest.fixture(scope="module")
def cluster_at_0014(citus_cluster: CitusCluster) -> str:
    """The coordinator distributed at 0014 and populated there."""
    url = citus_cluster.dsn()
    config = Config(str(REPO / "alembic.ini"))
    target = sqlalchemy_url(url)
    target += ("&" if "?" in target else "?") + "options=" + quote(LOCAL_DDL_OPTIONS)
    config.set_main_option("sqlalchemy.url", target.replace("%", "%%"))
    command.upgrade(config, "0014")
    steps = distribute_steps()
    later = [step for step in steps if any(name in step for name in LATER_OBJECTS)]
    assert len(later) == 3  # the steps placing a later revision's objects (0015's experiments, 0016's tokens)
    with psycopg.connect(url, autocommit=True) as conn:
        for step in steps:
            if step not in later:
                conn.execute(step.encode())
    prepare(url)
    return url


@pytest.fixture(scope="module")
def single_url(pg_server: EmbeddedServer, template_url: str) -> Iterator[str]:
    """A single node at head with the same users, pools and likes."""
    name = create_database(pg_server, TEMPLATE)
    url = pg_server.dsn(name)
    prepare(url)
    yield url
    drop_database(pg_server, name)


def connect_to(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def test_an_upgrade_is_refused_while_the_owner_cannot_log_in_and_changes_nothing(
    citus_cluster: CitusCluster, cluster_at_0014: str
) -> None:
    worker = citus_cluster.workers()[0].dsn()
    with connect_to(cluster_at_0014) as conn, connect_to(worker) as on_worker:
        before = conn.execute(FUNCTIONS).fetchall(), on_worker.execute(FUNCTIONS).fetchall()
        conn.execute("ALTER ROLE ootd_owner NOLOGIN")  # propagated to the workers
        try:
            with pytest.raises(CommandError, match="ootd_owner cannot log in: an upgrade creates"):
                migrate(cluster_at_0014)
        finally:
            conn.execute("ALTER ROLE ootd_owner LOGIN")
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0014",)
        assert (conn.execute(FUNCTIONS).fetchall(), on_worker.execute(FUNCTIONS).fetchall()) == before
        assert on_worker.execute("SELECT to_regclass('ootd.experiments')").fetchone() == (None,)


def test_a_distributed_0014_cluster_migrates_to_head_keeping_its_data_and_serving_variants(
    citus_cluster: CitusCluster, cluster_at_0014: str, single_url: str
) -> None:
    url = cluster_at_0014
    with connect_to(url) as conn:
        data = conn.execute(DATA).fetchone()
        assert data[2] == sum(likes_of(u) for u in LIKERS) == 16
        feeds = {u: conn.execute(FEED, (u, AT)).fetchall() for u in SAMPLE}
        assert {len(row) for rows in feeds.values() for row in rows} == {10}  # 0014: no variant column

    assert migrate(url) == "upgrade"

    with connect_to(url) as conn, connect_to(single_url) as single:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
        assert conn.execute(DATA).fetchone() == data  # every user, profile, like and outfit kept
        # the likers, re-learned by 0017 from their likes: what the single node learned, to within
        # 0014's rounding (0017 took back what 0014 had learned to find their stated profile)
        for user_id in LIKERS:
            after, learning = conn.execute(
                "SELECT style_dna, stated_dna IS NOT NULL FROM ootd.users WHERE id = %s", (user_id,)
            ).fetchone()
            single_dna = single.execute("SELECT style_dna FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]
            assert learning
            assert {k: v for k, v in after.items() if k not in MEANS} == {
                k: v for k, v in single_dna.items() if k not in MEANS
            }, user_id
            for key in MEANS:
                assert abs(float(after[key]) - float(single_dna[key])) < 1e-9, (user_id, key)
        # every node has the head schema's functions, bodies and grants: the single node's
        functions = single.execute(FUNCTIONS).fetchall()
        assert conn.execute(FUNCTIONS).fetchall() == functions
        for worker in citus_cluster.workers():
            with connect_to(worker.dsn()) as on_worker:
                assert on_worker.execute(FUNCTIONS).fetchall() == functions, worker.home.name
        unplaced = conn.execute(
            "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'ootd'::regnamespace AND c.relkind = 'r' "
            "AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)"
        ).fetchone()
        assert unplaced == (0,)
        kinds = conn.execute(
            "SELECT table_name::text, citus_table_type FROM citus_tables "
            "WHERE table_name::text LIKE 'ootd.experiment%' ORDER BY 1"
        ).fetchall()
        assert kinds == [
            (f"ootd.{t}", "reference") for t in ("experiment_changes", "experiment_variants", "experiments")
        ]
        delegated = conn.execute(
            "SELECT p.proname FROM pg_dist_object d JOIN pg_proc p ON p.oid = d.objid "
            "WHERE d.classid = 'pg_proc'::regclass AND d.distribution_argument_index IS NOT NULL ORDER BY 1"
        ).fetchall()
        assert [name for (name,) in delegated] == [
            "feed",
            "feed_explain",
            "like",
            "put_user",
            "revoke_tokens",
            "token_generation",
            "unlike",
            "user_profile",
        ]
        plan = [line.strip() for (line,) in conn.execute(f"EXPLAIN (COSTS OFF) {FEED}", (SAMPLE[0], AT)).fetchall()]
        assert "Task Count: 1" in plan, plan  # delegated again: one task, on the worker holding the user
        assert any(line.startswith("->  Function Scan on feed") for line in plan), plan

        # The feeds: as the single node at head serves them, from the same data (0018's archetype term
        # changes rankings on purpose, so 0014's feeds are no longer the reference).  The likers, whose
        # profiles 0017 re-learned to within 0014's rounding, may swap near-ties: their profiles are
        # compared above, their feeds' items as sets here.
        for user_id in feeds:
            got, want = conn.execute(FEED, (user_id, AT)).fetchall(), single.execute(FEED, (user_id, AT)).fetchall()
            assert len(got) == len(want) == 3 and {r[-1] for r in got} == {None}, user_id  # no experiment: no variant
            if user_id in LIKERS:
                assert len({r[1] for r in got} & {r[1] for r in want}) >= 2, user_id
            else:
                assert got == want, user_id

        for db in (conn, single):
            db.execute("SELECT * FROM ootd.start_experiment('after_upgrade', %s)", (Jsonb(EXPERIMENT),))
        try:
            variants = set()
            for user_id in SAMPLE:
                rows = conn.execute(FEED, (user_id, AT)).fetchall()
                if user_id not in LIKERS:
                    assert rows == single.execute(FEED, (user_id, AT)).fetchall(), user_id
                variants |= {row[-1] for row in rows}
            assert variants == {"control", "more_cosine"}
            assert migrate(url) == "upgrade"  # at head: nothing to run, every step finds its work done
            other = SAMPLE[len(LIKERS)]
            assert conn.execute(FEED, (other, AT)).fetchall() == single.execute(FEED, (other, AT)).fetchall()
        finally:
            for db in (conn, single):
                db.execute("DELETE FROM ootd.experiment_changes")
                db.execute("DELETE FROM ootd.experiment_variants")
                db.execute("DELETE FROM ootd.experiments")
