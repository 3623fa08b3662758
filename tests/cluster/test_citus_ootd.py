"""ootd on a real Citus cluster (coordinator + 2 workers): `ootd migrate` distributes the one schema,
the nightly batch runs, feeds equal a single node's, likes lose nothing, the feed is a one-worker
router call, and the cluster (and its UNLOGGED cache) survives a worker crash.

The single-node answer is built in the same session from the same seed, day and LLM stand-in.
Both nightly runs use one request at a time, so outfit ids (which the feed's tie-break hashes)
are assigned in the same order on both.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterator

import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from batch.nightly import NightlyConfig, run_nightly
from cli.main import CommandError, migrate
from db.citus import CitusCluster, distribute_steps
from db.server import EmbeddedServer
from tests.conftest import create_database, drop_database, populate

pytestmark = pytest.mark.cluster

DAY = date(2026, 4, 20)
USERS = 10_000
SEED = 42
INSTANTS = [f"{DAY} 09:00+00", f"{DAY} 21:00+00"]
FEED = "SELECT * FROM ootd.feed(%s, %s, 3)"


def nightly(url: str) -> None:
    report = run_nightly(url, NightlyConfig(day=DAY, llm="offline", concurrency=1))
    assert report.failed == []


@pytest.fixture(scope="module")
def cluster_url(citus_cluster: CitusCluster) -> str:
    """The coordinator, migrated (and so distributed) by `ootd migrate`, seeded, with the day's pools."""
    return populate(citus_cluster.dsn(), USERS, SEED, DAY, migrate_first=True)


@pytest.fixture(scope="module")
def single_url(pg_server: EmbeddedServer, seeded_template: str) -> Iterator[str]:
    """A single node with the same users (seed 42) and the same day's pools."""
    name = create_database(pg_server, seeded_template)
    url = pg_server.dsn(name)
    nightly(url)
    yield url
    drop_database(pg_server, name)


def connect_to(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


def worker_port_of(conn: psycopg.Connection, user_id: int) -> int:
    return conn.execute(
        "SELECT nodeport FROM citus_shards WHERE table_name = 'ootd.users'::regclass "
        "AND shardid = get_shard_id_for_distribution_column('ootd.users', %s)",
        (user_id,),
    ).fetchone()[0]


def users_by_worker(conn: psycopg.Connection, count: int) -> dict[int, list[int]]:
    """The first `count` user ids held by each worker."""
    placed: dict[int, list[int]] = {}
    for user_id in range(1, USERS + 1):
        port = worker_port_of(conn, user_id)
        if len(placed.setdefault(port, [])) < count:
            placed[port].append(user_id)
        if len(placed) == 2 and all(len(ids) == count for ids in placed.values()):
            return placed
    raise AssertionError(f"users on fewer than two workers: {placed}")


# ------------------------------------------------------------- distribution --
def test_migrate_distributes_users_and_likes_by_user_and_the_rest_as_reference_tables(cluster_url: str) -> None:
    with connect_to(cluster_url) as conn:
        kinds = dict(
            conn.execute(
                "SELECT table_name::text, citus_table_type FROM citus_tables WHERE table_name::text LIKE 'ootd.%'"
            ).fetchall()
        )
        tables = {
            t
            for (t,) in conn.execute(
                "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = 'ootd'::regnamespace AND relkind = 'r'"
            )
        }
        colocated = conn.execute(
            "SELECT count(DISTINCT colocation_id) FROM citus_tables WHERE table_name IN "
            "('ootd.users'::regclass, 'ootd.likes'::regclass, 'ootd.api_token_generations'::regclass, "
            "'ootd.served_feeds'::regclass)"
        ).fetchone()[0]
        persistence = conn.execute(
            "SELECT DISTINCT result FROM run_command_on_placements('ootd.pool_cache', "
            "$$SELECT relpersistence FROM pg_class WHERE oid = '%s'::regclass$$)"
        ).fetchall()
    assert set(kinds) == tables  # every table is placed
    by_user = {"ootd.users", "ootd.likes", "ootd.api_token_generations", "ootd.served_feeds"}
    assert {t for t, k in kinds.items() if k == "distributed"} == by_user
    assert {k for t, k in kinds.items() if t not in by_user} == {"reference"}
    assert colocated == 1
    assert persistence == [("u",)]  # the cache is UNLOGGED on every node


def test_every_node_has_every_function_with_the_single_node_grants(
    citus_cluster: CitusCluster, cluster_url: str
) -> None:
    query = (
        "SELECT p.oid::regprocedure::text, coalesce(p.proacl::text, ''), p.proowner::regrole::text "
        "FROM pg_proc p WHERE p.pronamespace = 'ootd'::regnamespace ORDER BY 1"
    )
    with connect_to(cluster_url) as conn:
        coordinator = conn.execute(query).fetchall()
        delegated = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_dist_object d JOIN pg_proc p ON p.oid = d.objid "
            "WHERE d.classid = 'pg_proc'::regclass AND d.distribution_argument_index IS NOT NULL ORDER BY 1"
        ).fetchall()
    assert not [name for name, acl, _ in coordinator if acl.startswith("{=X")]  # nothing runs for PUBLIC
    for worker in citus_cluster.workers():
        with connect_to(worker.dsn()) as conn:
            assert conn.execute(query).fetchall() == coordinator, worker.home.name
            # the owner logs in, as Citus needs for the worker connections of a call it does not delegate
            assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ootd_owner'").fetchone() == (True,)
    assert {name for (name,) in delegated} == {
        "ootd.feed(bigint,timestamp with time zone,integer)",
        "ootd.feed_explain(bigint,timestamp with time zone,integer)",
        'ootd."like"(bigint,bigint)',
        "ootd.put_user(bigint,text,text,jsonb,jsonb)",
        "ootd.revoke_tokens(bigint)",
        "ootd.token_generation(bigint)",
        "ootd.unlike(bigint,bigint)",
        "ootd.user_profile(bigint)",
    }


def test_migrate_again_changes_nothing_and_a_downgrade_is_refused(cluster_url: str) -> None:
    snapshot = (
        "SELECT (SELECT array_agg((logicalrelid::text, partmethod, colocationid) ORDER BY logicalrelid::text) "
        "FROM pg_dist_partition), (SELECT count(*) FROM pg_dist_object), "
        "(SELECT count(*) FROM pg_dist_shard), (SELECT version_num FROM alembic_version)"
    )
    with connect_to(cluster_url) as conn:
        before = conn.execute(snapshot).fetchone()
    assert migrate(cluster_url) == "upgrade"
    with connect_to(cluster_url) as conn:
        assert conn.execute(snapshot).fetchone() == before
    # a coordinator only goes to head: a distribution begun at an older revision would leave its bodies
    with pytest.raises(CommandError, match="only goes to head .*not to 0013"):
        migrate(cluster_url, revision="0013")
    with connect_to(cluster_url) as conn:
        assert conn.execute(snapshot).fetchone() == before
    assert len(distribute_steps()) >= 8


def test_bad_users_are_rejected_on_the_shards_with_the_single_node_errors(cluster_url: str) -> None:
    cases = [
        ("UTC+5", "{}", "{}", "22023", 'user 20001: invalid time zone "UTC+5": not an IANA time zone name'),
        (
            "Europe/Paris",
            '{"colour": []}',
            "{}",
            "23514",
            'user 20001: style_dna has unknown key "colour" (known: archetype, preferred_colors, category_affinity, '
            "color_affinity, archetype_affinity, vibe, trend, dare)",
        ),
        (
            "Europe/Paris",
            "{}",
            '{"disliked_colors": ["Mauve"]}',
            "23503",
            'user 20001: unknown color "Mauve" in style_rules.disliked_colors',
        ),
    ]
    with connect_to(cluster_url) as conn:
        for timezone, dna, rules, sqlstate, message in cases:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(
                    "INSERT INTO ootd.users (id, city, timezone, style_dna, style_rules) VALUES (20001, 'Paris', %s, %s, %s)",
                    (timezone, dna, rules),
                )
            assert (caught.value.sqlstate, caught.value.diag.message_primary) == (sqlstate, message)
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as caught:
            conn.execute("SELECT ootd.put_user(20001, 'Paris', NULL, '{\"archetype\": \"Goth\"}')")
        assert caught.value.diag.message_primary == 'user 20001: unknown archetype "Goth" in style_dna.archetype'
        assert conn.execute("SELECT count(*) FROM ootd.users WHERE id = 20001").fetchone() == (0,)


# -------------------------------------------------------------------- feeds --
def test_two_hundred_feeds_equal_the_single_node_answer(cluster_url: str, single_url: str) -> None:
    users = list(range(7, USERS + 1, 50))  # 200 users on both workers
    assert len(users) == 200
    with connect_to(cluster_url) as cluster, connect_to(single_url) as single:
        pools = "SELECT cluster_id, array_agg(title ORDER BY slot) FROM ootd.outfits GROUP BY 1 ORDER BY 1"
        assert cluster.execute(pools).fetchall() == single.execute(pools).fetchall()
        compared = 0
        for user_id in users:
            for at in INSTANTS:
                expected = single.execute(FEED, (user_id, at)).fetchall()
                assert cluster.execute(FEED, (user_id, at)).fetchall() == expected, (user_id, at)
                compared += len(expected)
    assert compared == 200 * len(INSTANTS) * 3


def test_the_feed_is_a_router_call_on_the_worker_holding_the_user(cluster_url: str) -> None:
    with connect_to(cluster_url) as conn:
        for user_id in users_by_worker(conn, 1).values():
            user_id = user_id[0]
            plan = [
                line
                for (line,) in conn.execute(
                    "EXPLAIN (COSTS OFF) SELECT * FROM ootd.feed(%s, %s)", (user_id, INSTANTS[0])
                ).fetchall()
            ]
            assert plan[0].startswith("Custom Scan (Citus Adaptive)"), plan
            assert "Task Count: 1" in [line.strip() for line in plan], plan
            nodes = [line.strip() for line in plan if line.strip().startswith("Node:")]
            assert nodes == [f"Node: host=127.0.0.1 port={worker_port_of(conn, user_id)} dbname=ootd"], plan
            assert any(line.strip().startswith("->  Function Scan on feed") for line in plan), plan


# -------------------------------------------------------------------- likes --
def test_likes_from_eight_connections_on_both_workers_equal_a_serial_replay(cluster_url: str, single_url: str) -> None:
    with connect_to(cluster_url) as conn:
        placed = users_by_worker(conn, 2)
        outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 48").fetchall()]
    users = sorted(u for ids in placed.values() for u in ids)  # 2 users on each worker
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def worker(share: list[int]) -> None:
        try:
            with connect_to(cluster_url) as session:
                barrier.wait()
                for outfit_id in share:
                    for user_id in users:  # every session likes for every user: 8 sessions per user row
                        assert session.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone()[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(outfits[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []

    profile = "SELECT likes_count, style_dna, taste::real[], taste_norm FROM ootd.users WHERE id = %s"
    with connect_to(cluster_url) as conn, connect_to(single_url) as single:
        for user_id in users:
            order = [
                r[0]
                for r in conn.execute(
                    "SELECT outfit_id FROM ootd.likes WHERE user_id = %s ORDER BY liked_at, outfit_id", (user_id,)
                ).fetchall()
            ]
            assert sorted(order) == outfits
            with single.transaction(force_rollback=True):
                for outfit_id in order:  # the serial replay
                    single.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id))
                expected = single.execute(profile, (user_id,)).fetchone()
            got = conn.execute(profile, (user_id,)).fetchone()
            assert got[0] == expected[0] == 48, user_id  # no lost update
            dna, want = got[1], expected[1]
            assert dna["category_affinity"] == want["category_affinity"]
            assert dna["color_affinity"] == want["color_affinity"]
            strengths = sorted(dna["color_affinity"].values(), reverse=True)[:8]
            assert [dna["color_affinity"][c] for c in dna["preferred_colors"]] == strengths  # the strongest 8
            for key in ("vibe", "trend", "dare"):  # derived from the same likes: exactly equal
                assert dna[key] == want[key], key
            assert got[2] == expected[2]  # taste: the same embeddings added in the same (outfit id) order
            assert got[3] == expected[3]
        for user_id in users:  # and every unlike takes its like back
            for outfit_id in outfits:
                assert conn.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone()[0]
            assert conn.execute(
                "SELECT likes_count, style_dna ? 'color_affinity' FROM ootd.users WHERE id = %s", (user_id,)
            ).fetchone() == (0, False)


# ------------------------------------------------------ crash and the cache --
def test_after_a_worker_crash_feeds_are_served_from_durable_pools_until_the_cache_is_refilled(
    citus_cluster: CitusCluster, cluster_url: str
) -> None:
    explain = "SELECT DISTINCT source FROM ootd.feed_explain(%s, %s)"
    with connect_to(cluster_url) as conn:
        placed = users_by_worker(conn, 1)
        before = {u[0]: conn.execute(FEED, (u[0], INSTANTS[0])).fetchall() for u in placed.values()}
        assert {u[0]: conn.execute(explain, (u[0], INSTANTS[0])).fetchall() for u in placed.values()} == {
            u: [("cache",)] for u in before
        }
    crashed = citus_cluster.workers()[0]
    crashed_user = placed[crashed.port][0]
    other_user = next(u[0] for port, u in placed.items() if port != crashed.port)
    with connect_to(crashed.dsn()) as worker:
        # the nodes run with synchronous_commit off: without this the crash could lose the unlikes the
        # test above just committed (seen: 28 likes back after recovery), and the tests below see them
        worker.execute("CHECKPOINT")
    assert crashed.stop("immediate")  # a crash: recovery empties UNLOGGED tables on that worker
    citus_cluster.up()
    with connect_to(cluster_url) as conn:
        for user_id, rows in before.items():  # the same answers, whichever copy serves them
            assert conn.execute(FEED, (user_id, INSTANTS[0])).fetchall() == rows
        assert conn.execute(explain, (crashed_user, INSTANTS[0])).fetchall() == [("durable",)]
        assert conn.execute(explain, (other_user, INSTANTS[0])).fetchall() == [("cache",)]
        with connect_to(crashed.dsn()) as worker:
            assert worker.execute("SELECT count(*) FROM ootd.pool_cache").fetchone() == (0,)
        # refilling the day rewrites every copy (a reference table write goes to every node)
        assert conn.execute("SELECT ootd.refresh_pool_cache(%s)", (DAY,)).fetchone()[0] > 0
        assert conn.execute(explain, (crashed_user, INSTANTS[0])).fetchall() == [("cache",)]
        for user_id, rows in before.items():
            assert conn.execute(FEED, (user_id, INSTANTS[0])).fetchall() == rows
        first = conn.execute("SELECT min(id) FROM ootd.outfits").fetchone()[0]
        assert conn.execute("SELECT ootd.like(%s, %s)", (crashed_user, first)).fetchone()[0]  # writes work too
        assert conn.execute("SELECT ootd.unlike(%s, %s)", (crashed_user, first)).fetchone()[0]


def test_calls_citus_does_not_delegate_run_on_the_coordinator_as_the_owner(cluster_url: str) -> None:
    """Inside a transaction block, or with an argument that is not a constant, Citus does not delegate
    a call: it runs on the coordinator as the SECURITY DEFINER owner, whose queries reach the workers
    as that role (db/citus.sql gives ootd_owner LOGIN).  The result equals the delegated call's; a
    rolled-back transaction writes nothing."""
    with connect_to(cluster_url) as conn:
        first = conn.execute("SELECT min(id) FROM ootd.outfits").fetchone()[0]
        before = conn.execute("SELECT likes_count FROM ootd.users WHERE id = 42").fetchone()[0]
        delegated = conn.execute("SELECT * FROM ootd.feed(42, %s)", (f"{DAY} 12:00+00",)).fetchall()
        with conn.transaction():  # (direct table reads as another role after the like: Citus refuses those)
            assert conn.execute("SELECT * FROM ootd.feed(42, %s)", (f"{DAY} 12:00+00",)).fetchall() == delegated
            assert conn.execute("SELECT ootd.like(42, %s)", (first,)).fetchone()[0] is True
            assert conn.execute("SELECT ootd.user_profile(42) -> 'liked_outfits'").fetchone()[0] == [first]
        assert conn.execute("SELECT likes_count FROM ootd.users WHERE id = 42").fetchone()[0] == before + 1
        assert conn.execute("SELECT ootd.unlike(42, (SELECT min(id) FROM ootd.outfits))").fetchone()[0] is True
        with pytest.raises(psycopg.errors.RaiseException):
            with conn.transaction():
                conn.execute("SELECT ootd.like(42, %s)", (first,))
                conn.execute("DO $$ BEGIN RAISE EXCEPTION 'roll back'; END $$")
        assert conn.execute("SELECT likes_count FROM ootd.users WHERE id = 42").fetchone()[0] == before
        profile = conn.execute("SELECT ootd.user_profile(42)").fetchone()[0]
        assert (
            conn.execute("SELECT count(*) FROM ootd.simulate(ootd.user_profile(42))").fetchone()[0]
            == (conn.execute("SELECT count(*) FROM ootd.simulate(%s)", (Jsonb(profile),)).fetchone()[0])
        )


def test_a_new_color_is_accepted_on_every_shard_after_refresh_vocabulary(cluster_url: str) -> None:
    add = "SELECT (ootd.put_user(%s, 'Paris', NULL, '{\"preferred_colors\": [\"Teal\"]}')).id"
    with connect_to(cluster_url) as conn:
        placed = users_by_worker(conn, 1)
        saved = {
            u[0]: conn.execute("SELECT style_dna FROM ootd.users WHERE id = %s", u).fetchone()[0]
            for u in placed.values()
        }
        conn.execute("INSERT INTO ootd.colors (name, hex, family) VALUES ('Teal', '#008080', 'cool')")
        try:
            for user_id in placed.values():  # a user on each worker
                with pytest.raises(psycopg.errors.ForeignKeyViolation, match='unknown color "Teal"'):
                    conn.execute(add, (user_id[0],))  # the check fails closed until the refresh
            assert conn.execute("SELECT ootd.refresh_vocabulary() -> 'colors' ? 'Teal'").fetchone() == (True,)
            for user_id in placed.values():
                assert conn.execute(add, (user_id[0],)).fetchone() == (user_id[0],)
        finally:
            for user_id, dna in saved.items():
                conn.execute("UPDATE ootd.users SET style_dna = %s WHERE id = %s", (Jsonb(dna), user_id))
            conn.execute("DELETE FROM ootd.colors WHERE name = 'Teal'")
            conn.execute("SELECT ootd.refresh_vocabulary()")


# -------------------------------------------------------------- experiments --
EXPERIMENT = {"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}
#: 80 users on both workers, none of those the tests above like and unlike (the first users of each
#: worker, 42).
SAMPLE = list(range(101, USERS + 1, 125))
#: Every copy (coordinator and workers) of the experiments' reference tables, read placement by placement.
EXPERIMENT_COPIES = " UNION ALL ".join(
    f"SELECT '{table}', nodeport, result FROM run_command_on_placements('ootd.{table}', "
    f"$$SELECT coalesce(json_agg(x ORDER BY x::text), '[]')::text FROM %s x$$)"
    for table in ("experiments", "experiment_variants", "experiment_changes")
)


def start(conn: psycopg.Connection, name: str, variants: dict) -> list[tuple]:
    return conn.execute("SELECT * FROM ootd.start_experiment(%s, %s)", (name, Jsonb(variants))).fetchall()


def forget_experiments(conn: psycopg.Connection) -> None:
    """As the superuser (the functions never delete one): no experiment left for the other tests."""
    conn.execute("DELETE FROM ootd.experiment_changes")
    conn.execute("DELETE FROM ootd.experiment_variants")
    conn.execute("DELETE FROM ootd.experiments")


def experiment_copies(conn: psycopg.Connection) -> list[tuple]:
    """(table, node port, its rows as JSON) for every placement: 3 tables x (coordinator + 2 workers)."""
    copies = sorted(conn.execute(EXPERIMENT_COPIES).fetchall())
    assert len(copies) == 9
    return copies


#: The columns of ootd.experiment_results that do not depend on the period's length.
RUNNING_RESULTS = (
    "experiment, variant, control, share, running, since, users, likes, users_liking, liking_share, "
    "diff_liking_share, liking_ci95_low, liking_ci95_high"
)


def results(conn: psycopg.Connection, columns: str) -> list[dict]:
    query = f"SELECT {columns} FROM ootd.experiment_results ORDER BY experiment, variant"
    return conn.cursor(row_factory=dict_row).execute(query).fetchall()


def hand_made_likes(conn: psycopg.Connection) -> list[tuple[int, int, datetime]]:
    """0-3 likes for every 7th user but those of SAMPLE, spread over 2026-04-19..29 (some outside the
    measured period), made by the superuser (the likes triggers learn them, as any like)."""
    outfits = [r[0] for r in conn.execute("SELECT id FROM ootd.outfits ORDER BY id LIMIT 3").fetchall()]
    first = datetime(2026, 4, 19, tzinfo=timezone.utc)
    return [
        (user_id, outfit_id, first + timedelta(days=user_id % 11, hours=n))
        for user_id in range(7, USERS + 1, 7)
        if user_id not in SAMPLE
        for n, outfit_id in enumerate(outfits[: user_id % 4])
    ]


def test_an_experiment_serves_the_single_node_variants_feeds_and_results(cluster_url: str, single_url: str) -> None:
    """An experiment started on the coordinator reaches every worker: a feed delegated to the user's
    worker serves the user's variant with its weights (the single node's rows, variant included);
    a change of shares moves control users only; ootd.experiment_results (a distributed aggregation
    over users and likes, from the coordinator) gives the single node's numbers; ending it serves
    every user as before, with no variant."""
    with connect_to(cluster_url) as cluster, connect_to(single_url) as single:
        before = {u: cluster.execute(FEED, (u, INSTANTS[0])).fetchall() for u in SAMPLE}
        assert {row[-1] for rows in before.values() for row in rows} == {None}
        try:
            for conn in (cluster, single):
                assert [r[1:5] for r in start(conn, "cosine_up", EXPERIMENT)] == [
                    ("control", 1, True, Decimal("0.5")),
                    ("more_cosine", 2, False, Decimal("0.5")),
                ]
            variant_of: dict[int, str] = {}
            for user_id in SAMPLE:
                for at in INSTANTS:
                    rows = cluster.execute(FEED, (user_id, at)).fetchall()
                    assert rows == single.execute(FEED, (user_id, at)).fetchall(), (user_id, at)
                    assert len({row[-1] for row in rows}) == 1
                    variant_of[user_id] = rows[0][-1]
                assert cluster.execute("SELECT variant FROM ootd.experiment_of(%s)", (user_id,)).fetchone() == (
                    variant_of[user_id],
                )
            assert set(variant_of.values()) == {"control", "more_cosine"}
            for user_id, rows in before.items():  # the control is served the weights in force; the other is not
                now = cluster.execute(FEED, (user_id, INSTANTS[0])).fetchall()
                if variant_of[user_id] == "control":
                    assert [r[:-1] for r in now] == [r[:-1] for r in rows], user_id
                else:
                    assert [r[6] for r in now] != [r[6] for r in rows], user_id

            shares = Jsonb({"control": 0.2, "more_cosine": 0.8})
            for conn in (cluster, single):
                conn.execute("SELECT * FROM ootd.set_experiment_shares('cosine_up', %s)", (shares,))
            moved = 0
            for user_id in SAMPLE:
                rows = cluster.execute(FEED, (user_id, INSTANTS[1])).fetchall()
                assert rows == single.execute(FEED, (user_id, INSTANTS[1])).fetchall(), user_id
                if variant_of[user_id] == "more_cosine":
                    assert rows[0][-1] == "more_cosine", user_id  # raising its share only moves control users
                moved += rows[0][-1] != variant_of[user_id]
            assert moved > 0

            no_likes = "SELECT count(*) FROM ootd.likes"
            assert cluster.execute(no_likes).fetchone() == single.execute(no_likes).fetchone() == (0,)
            likes = hand_made_likes(cluster)
            assert likes == hand_made_likes(single) and len(likes) > 1000
            for conn in (cluster, single):
                with (
                    conn.cursor() as cur,
                    cur.copy("COPY ootd.likes (user_id, outfit_id, liked_at) FROM STDIN") as copy,
                ):
                    for like in likes:
                        copy.write_row(like)
                conn.execute(
                    "UPDATE ootd.experiments SET started_at = '2026-04-20 00:00+00', "
                    "allocated_at = '2026-04-21 00:00+00' WHERE name = 'cosine_up'"
                )
            # running: measured until now(), so compare what does not depend on the length of the period
            running = results(cluster, RUNNING_RESULTS)
            assert running == results(single, RUNNING_RESULTS)
            assert [r["running"] for r in running] == [True, True]
            in_period = sum(1 for like in likes if like[2] >= datetime(2026, 4, 21, tzinfo=timezone.utc))
            assert sum(r["likes"] for r in running) == in_period
            assert sum(r["users"] for r in running) == USERS  # every user in one variant

            for conn in (cluster, single):
                assert conn.execute("SELECT (ootd.end_experiment('cosine_up')).name").fetchone() == ("cosine_up",)
            for user_id, rows in before.items():  # every user served as before the experiment, no variant
                assert cluster.execute(FEED, (user_id, INSTANTS[0])).fetchall() == rows, user_id
            assert cluster.execute("SELECT count(*) FROM ootd.experiment_of(%s)", (SAMPLE[0],)).fetchone() == (0,)

            for conn in (cluster, single):
                conn.execute("UPDATE ootd.experiments SET ended_at = '2026-04-28 00:00+00' WHERE name = 'cosine_up'")
            ended = results(cluster, "*")
            assert ended == results(single, "*")  # every column, the confidence intervals too
            assert [(r["variant"], r["running"], r["days"]) for r in ended] == [
                ("control", False, 7.0),
                ("more_cosine", False, 7.0),
            ]
            assert 0 < ended[0]["likes"] < sum(r["likes"] for r in ended) < in_period  # 04-28 and later left out
            low, diff, high = (ended[1][k] for k in ("diff_ci95_low", "diff_likes_per_user_day", "diff_ci95_high"))
            assert low < diff < high
        finally:
            for conn in (cluster, single):
                conn.execute("DELETE FROM ootd.likes WHERE liked_at < '2026-05-01 00:00+00'")
                forget_experiments(conn)


def test_bad_experiment_input_is_refused_with_the_single_node_errors_and_changes_no_copy(
    cluster_url: str, single_url: str
) -> None:
    refused = [
        # (what, SQL, SQLSTATE): a second experiment while one runs, a reused name, bad shares,
        # an unknown experiment, and a second running row written directly (the partial unique index)
        ("second", "SELECT * FROM ootd.start_experiment('second', %s)", "55006"),
        ("reused", "SELECT * FROM ootd.start_experiment('first', %s)", "42710"),
        ("shares", "SELECT * FROM ootd.set_experiment_shares('first', '{\"control\": 0.7}')", "22023"),
        ("unknown", "SELECT * FROM ootd.end_experiment('nope')", "P0002"),
        ("direct", "INSERT INTO ootd.experiments (name) VALUES ('sneaky')", "23505"),
    ]
    after_end = [
        ("ended", "SELECT * FROM ootd.end_experiment('first')", "55000"),
        ("weight", "SELECT * FROM ootd.start_experiment('third', %s)", "22023"),
    ]
    bad_weight = Jsonb({"control": {"share": 0.5}, "b": {"share": 0.5, "weights": {"cosine": -1}}})

    def errors_of(conn: psycopg.Connection, cases: list[tuple[str, str, str]]) -> list[tuple]:
        answers = []
        for what, sql, _ in cases:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(sql, (bad_weight,) if "%s" in sql else None)
            answers.append((what, caught.value.sqlstate, caught.value.diag.message_primary))
        return answers

    with connect_to(cluster_url) as cluster, connect_to(single_url) as single:
        try:
            for conn in (cluster, single):
                start(conn, "first", EXPERIMENT)
            copies = experiment_copies(cluster)
            assert len({result for table, _, result in copies if table == "experiments"}) == 1  # 3 equal copies
            got = errors_of(cluster, refused)
            assert [(what, sqlstate) for what, sqlstate, _ in got] == [(w, s) for w, _, s in refused]
            assert got[:4] == errors_of(single, refused)[:4]  # the same messages (the 23505 names the shard)
            assert experiment_copies(cluster) == copies  # nothing changed, on any node

            for conn in (cluster, single):
                conn.execute("SELECT ootd.end_experiment('first')")
            copies = experiment_copies(cluster)
            got = errors_of(cluster, after_end)
            assert got[1:] == errors_of(single, after_end)[1:]
            assert got[0][2].startswith('experiment "first" ended at ')  # (each node's end time)
            assert [(what, sqlstate) for what, sqlstate, _ in got] == [(w, s) for w, _, s in after_end]
            assert experiment_copies(cluster) == copies
            assert cluster.execute(FEED, (SAMPLE[0], INSTANTS[0])).fetchone()[-1] is None
        finally:
            for conn in (cluster, single):
                forget_experiments(conn)
