"""Likes learn on a real Citus cluster (coordinator + 2 workers) in the shards' triggers (migration
0017: db/citus.sql distributes ootd.likes with citus.enable_unsafe_triggers on, so the statement
triggers fire on the worker holding the like and update the co-located users shard there).

Every check compares a user's stored profile (tests/test_likes.py's STORED_PROFILE: every profile
column as text) with a serial replay of the user's current likes: in a rolled-back transaction,
DELETE them all (the stated profile comes back, bit for bit), then INSERT the same (outfit_id,
liked_at) rows one statement per row in liked_at order.  The profile depends only on the stated
profile and the current likes, so any writer, order, batch or concurrency must give the replay's
bytes, and likes_count must equal the user's rows.
"""

from __future__ import annotations

import random
import threading
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

import psycopg
import pytest
from pgvector.psycopg import register_vector

from db.citus import CitusCluster
from db.server import EmbeddedServer
from tests.conftest import TEMPLATE, create_database, drop_database, populate
from tests.test_likes import STORED_PROFILE

pytestmark = pytest.mark.cluster

DAY = date(2026, 4, 20)
USERS = 1_000
SEED = 42
#: A like time far from now(): explicit liked_at values never tie with a like made by ootd.like.
T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
LIKED = "SELECT outfit_id, liked_at FROM ootd.likes WHERE user_id = %s ORDER BY liked_at, outfit_id"
INSERT = "INSERT INTO ootd.likes (user_id, outfit_id, liked_at) VALUES (%s, %s, %s)"

REFUSED_TRUNCATE = "TRUNCATE ootd.likes cannot take back what the likes taught on a Citus cluster"


@pytest.fixture(scope="module")
def cluster_url(citus_cluster: CitusCluster) -> str:
    """The coordinator, migrated (and so distributed) by `ootd migrate`, seeded, with the day's pools."""
    return populate(citus_cluster.dsn(), USERS, SEED, DAY, migrate_first=True)


@pytest.fixture(scope="module")
def single_url(pg_server: EmbeddedServer, template_url: str) -> Iterator[str]:
    """A single node with the same users, pools and outfit ids."""
    name = create_database(pg_server, TEMPLATE)
    yield populate(pg_server.dsn(name), USERS, SEED, DAY)
    drop_database(pg_server, name)


def connect_to(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


@pytest.fixture(scope="module")
def placed(cluster_url: str) -> dict[int, list[int]]:
    """Every user id by the port of the worker holding it (two workers)."""
    with connect_to(cluster_url) as conn:
        rows = conn.execute(
            "SELECT u, s.nodeport FROM generate_series(1, %s) u "
            "JOIN citus_shards s ON s.table_name = 'ootd.users'::regclass "
            " AND s.shardid = get_shard_id_for_distribution_column('ootd.users', u) ORDER BY u",
            (USERS,),
        ).fetchall()
    by_port: dict[int, list[int]] = {}
    for user_id, port in rows:
        by_port.setdefault(port, []).append(user_id)
    assert len(by_port) == 2 and all(len(ids) > 320 for ids in by_port.values())
    return by_port


def pick(placed: dict[int, list[int]], first: int, count: int) -> list[int]:
    """`count` users of each worker, from the `first`-th of each: the tests use disjoint slices."""
    return sorted(u for ids in placed.values() for u in ids[first : first + count])


@pytest.fixture(scope="module")
def outfits(cluster_url: str, single_url: str) -> list[int]:
    with connect_to(cluster_url) as conn, connect_to(single_url) as single:
        ids = "SELECT id, title, category, color FROM ootd.outfits ORDER BY id"
        rows = conn.execute(ids).fetchall()
        assert rows == single.execute(ids).fetchall()  # the same outfits, ids included
    assert len(rows) >= 100
    return [r[0] for r in rows]


def stored(conn: psycopg.Connection, user_id: int) -> str:
    return conn.execute(STORED_PROFILE, (user_id,)).fetchone()[0]


def stored_all(conn: psycopg.Connection, users: list[int]) -> dict[int, str]:
    return {u: stored(conn, u) for u in users}


def replayed(conn: psycopg.Connection, user_id: int, stated: str) -> str:
    """The user's STORED_PROFILE after a serial replay of their likes (rolled back): DELETE them all
    (which must give back `stated`, the profile before any like), then INSERT each (outfit_id,
    liked_at) in liked_at order, one statement per row."""
    likes = conn.execute(LIKED, (user_id,)).fetchall()
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM ootd.likes WHERE user_id = %s", (user_id,))
        assert stored(conn, user_id) == stated, user_id
        for outfit_id, liked_at in likes:
            conn.execute(INSERT, (user_id, outfit_id, liked_at))
        return stored(conn, user_id)


def assert_learned(conn: psycopg.Connection, users: list[int], stated: dict[int, str]) -> dict[int, str]:
    """likes_count = the user's rows and the stored profile = a serial replay, for every user."""
    counts = dict(
        conn.execute(
            "SELECT u.id, u.likes_count - (SELECT count(*) FROM ootd.likes l WHERE l.user_id = u.id) "
            "FROM ootd.users u WHERE u.id = ANY(%s)",
            (users,),
        ).fetchall()
    )
    assert counts == {u: 0 for u in users}  # (a correlated subquery on the co-located shards)
    now = stored_all(conn, users)
    for user_id in users:
        assert now[user_id] == replayed(conn, user_id, stated[user_id]), user_id
    return now


def likes_count(conn: psycopg.Connection, user_id: int) -> int:
    return conn.execute("SELECT likes_count FROM ootd.users WHERE id = %s", (user_id,)).fetchone()[0]


def forget(conn: psycopg.Connection, users: list[int], stated: dict[int, str]) -> None:
    """Every like of `users` taken back in one DELETE over both workers: each stated profile is back."""
    conn.execute("DELETE FROM ootd.likes WHERE user_id = ANY(%s)", (users,))
    assert stored_all(conn, users) == stated


# --------------------------------------------------------------- concurrency --
def test_likes_and_unlikes_from_eight_connections_on_both_workers_lose_nothing_and_equal_a_serial_replay(
    cluster_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    """8 connections x 40 likes for 4 users (2 on each worker), ootd.like and direct INSERTs mixed:
    every connection writes for every user, so the triggers on both workers wait for each other's
    user row locks.  Then the same 8 connections take half of them back concurrently."""
    users = pick(placed, 0, 2)
    share = 10  # outfits per connection and user: 8 x 10 = 80 likes per user
    with connect_to(cluster_url) as conn:
        stated = stored_all(conn, users)
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def run(n: int, unlike: bool) -> None:
        try:
            with connect_to(cluster_url) as session:
                barrier.wait()
                for i in range(40):
                    user_id, outfit_id = users[i % 4], outfits[n * share + i // 4]
                    by_function = (i + i // 4) % 2 == 1  # each user's rows by both writers
                    if unlike:
                        if i // 4 % 2 == 0:  # half of them back
                            sql = (
                                "SELECT ootd.unlike(%s, %s)"
                                if by_function
                                else "DELETE FROM ootd.likes WHERE user_id = %s AND outfit_id = %s RETURNING true"
                            )
                            assert session.execute(sql, (user_id, outfit_id)).fetchone() == (True,)
                    elif by_function:
                        assert session.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone() == (True,)
                    else:
                        session.execute(
                            "INSERT INTO ootd.likes (user_id, outfit_id) VALUES (%s, %s)", (user_id, outfit_id)
                        )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    for unlike, left in ((False, 8 * share), (True, 8 * share // 2)):
        threads = [threading.Thread(target=run, args=(n, unlike)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        with connect_to(cluster_url) as conn:
            assert [likes_count(conn, u) for u in users] == [left] * 4  # no lost update
            assert_learned(conn, users, stated)
    with connect_to(cluster_url) as conn:
        forget(conn, users, stated)


# ---------------------------------------------------------------------- COPY --
def test_a_copy_on_the_coordinator_learns_what_the_single_node_learns_one_like_at_a_time(
    cluster_url: str, single_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    """One COPY of 6 users' likes (3 on each worker, 25 each, rows shuffled, explicit liked_at with
    ties) learns on both workers: likes_count = rows, and each profile equals a serial replay on the
    cluster and the single node's, where the same rows went in one INSERT at a time."""
    users = pick(placed, 2, 3)
    rng = random.Random(SEED)
    rows = [
        (user_id, outfit_id, T0 + timedelta(minutes=n // 2))  # pairs of likes at the same instant
        for user_id in users
        for n, outfit_id in enumerate(rng.sample(outfits, 25))
    ]
    rng.shuffle(rows)
    with connect_to(cluster_url) as conn, connect_to(single_url) as single:
        stated = stored_all(conn, users)
        assert stored_all(single, users) == stated  # the same users to start with
        with conn.cursor() as cur, cur.copy("COPY ootd.likes (user_id, outfit_id, liked_at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assert [likes_count(conn, u) for u in users] == [25] * 6
        learned = assert_learned(conn, users, stated)
        assert len(set(learned.values())) == 6 and not set(learned.values()) & set(stated.values())
        try:
            for row in sorted(rows, key=lambda r: (r[2], r[1])):
                single.execute(INSERT, row)
            assert stored_all(single, users) == learned
        finally:
            forget(single, users, stated)
        forget(conn, users, stated)


# ------------------------------------------------------------------- writers --
def test_every_writer_of_likes_learns_on_the_shards(
    cluster_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    """A multi-row INSERT over both workers, INSERT ... ON CONFLICT DO NOTHING with duplicates,
    ootd.like in a transaction block (run on the coordinator), an UPDATE of outfit_id and of
    liked_at, DELETEs over many users and a user's deletion (cascade): after each, likes_count =
    rows and every profile = its serial replay; the last DELETE gives every stated profile back."""
    users = pick(placed, 5, 3)
    first, then, more, moved_to = outfits[:5], outfits[5:8], outfits[8:10], outfits[10]
    with connect_to(cluster_url) as conn:
        stated = stored_all(conn, users)

        rows = [(u, o, T0 + timedelta(hours=i)) for u in users for i, o in enumerate(first)]
        values = ", ".join(["(%s, %s, %s)"] * len(rows))
        added = conn.execute(
            f"INSERT INTO ootd.likes (user_id, outfit_id, liked_at) VALUES {values}", [v for r in rows for v in r]
        ).rowcount
        assert added == 30
        assert assert_learned(conn, users, stated) != stated

        again = [(u, o) for u in users for o in [*first[:2], *then, then[0]]]  # 2 old, 3 new, 1 twice
        values = ", ".join(["(%s, %s)"] * len(again))
        added = conn.execute(
            f"INSERT INTO ootd.likes (user_id, outfit_id) VALUES {values} ON CONFLICT DO NOTHING",
            [v for r in again for v in r],
        ).rowcount
        assert added == 18  # each new like once
        assert [likes_count(conn, u) for u in users] == [8] * 6
        assert_learned(conn, users, stated)

        with conn.transaction():  # not delegated: runs on the coordinator as the owner
            for user_id in users:
                for outfit_id in more:
                    assert conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone() == (True,)
        assert [likes_count(conn, u) for u in users] == [10] * 6
        assert_learned(conn, users, stated)

        before = stored_all(conn, users)
        changed = conn.execute(
            "UPDATE ootd.likes SET outfit_id = %s WHERE user_id = ANY(%s) AND outfit_id = %s",
            (moved_to, users, first[0]),
        ).rowcount
        assert changed == 6
        after = assert_learned(conn, users, stated)
        assert all(after[u] != before[u] for u in users)
        changed = conn.execute(  # (a constant: Citus refuses a STABLE timestamptz + interval over a column)
            "UPDATE ootd.likes SET liked_at = %s WHERE user_id = ANY(%s) AND outfit_id = %s",
            (T0 + timedelta(days=1), users, first[1]),
        ).rowcount
        assert changed == 6  # the latest like now: a tie-break of preferred_colors may change
        assert_learned(conn, users, stated)

        removed = conn.execute(
            "DELETE FROM ootd.likes WHERE user_id = ANY(%s) AND outfit_id = ANY(%s)", (users, [*first[2:], *then])
        ).rowcount
        assert removed == 36
        assert [likes_count(conn, u) for u in users] == [4] * 6
        assert_learned(conn, users, stated)
        forget(conn, users, stated)

        # a user's deletion takes their likes with it (the trigger finds no user to teach)
        new_id = USERS + 1
        conn.execute("SELECT ootd.put_user(%s, 'Paris', NULL, '{\"archetype\": \"Minimal\"}')", (new_id,))
        try:
            assert conn.execute("SELECT ootd.like(%s, %s)", (new_id, first[0])).fetchone() == (True,)
            assert likes_count(conn, new_id) == 1
        finally:
            assert conn.execute("DELETE FROM ootd.users WHERE id = %s", (new_id,)).rowcount == 1
        assert conn.execute("SELECT count(*) FROM ootd.likes WHERE user_id = %s", (new_id,)).fetchone() == (0,)


# ----------------------------------------------------------- like + unlike --
def test_like_and_unlike_give_back_every_profile_bit_for_bit_on_two_hundred_users(
    cluster_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    """200 users on both workers: a like and its unlike give back the stored profile byte for byte,
    from no like (the stated profile) and from three likes (the learned one)."""
    users = pick(placed, 20, 100)
    assert len(users) == 200
    rng = random.Random(SEED + 1)
    with connect_to(cluster_url) as conn:
        stated = stored_all(conn, users)

        def like_and_unlike(expected: dict[int, str]) -> None:
            for user_id in users:
                outfit_id = rng.choice(outfits[50:])  # never one of the three below
                assert conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfit_id)).fetchone() == (True,)
                assert stored(conn, user_id) != expected[user_id]
                assert conn.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfit_id)).fetchone() == (True,)
                assert stored(conn, user_id) == expected[user_id], user_id

        like_and_unlike(stated)
        with conn.cursor() as cur, cur.copy("COPY ootd.likes (user_id, outfit_id, liked_at) FROM STDIN") as copy:
            for user_id in users:
                for n, outfit_id in enumerate(rng.sample(outfits[:50], 3)):
                    copy.write_row((user_id, outfit_id, T0 + timedelta(hours=n)))
        learned = stored_all(conn, users)
        like_and_unlike(learned)
        assert stored_all(conn, users) == learned
        forget(conn, users, stated)


# --------------------------------------------------------------- shard moves --
def shard_of(conn: psycopg.Connection, user_id: int) -> tuple[int, str, int]:
    return conn.execute(
        "SELECT shardid, nodename, nodeport FROM citus_shards WHERE table_name = 'ootd.likes'::regclass "
        "AND shardid = get_shard_id_for_distribution_column('ootd.likes', %s)",
        (user_id,),
    ).fetchone()


def move(conn: psycopg.Connection, user_id: int, to: tuple[str, int]) -> None:
    """Move the shard of ootd.users holding `user_id` (its co-located likes and token shards go too)."""
    shard = conn.execute("SELECT get_shard_id_for_distribution_column('ootd.users', %s)", (user_id,)).fetchone()[0]
    _, host, port = shard_of(conn, user_id)
    conn.execute("CALL citus_cleanup_orphaned_resources()")  # a shard moved away earlier, left to drop
    conn.execute(
        "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, shard_transfer_mode := 'block_writes')",
        (shard, host, port, *to),
    )
    conn.execute("CALL citus_cleanup_orphaned_resources()")


def test_after_a_shard_move_the_trigger_learns_on_the_new_worker(
    citus_cluster: CitusCluster, cluster_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    """A user's shards moved to the other worker (block_writes; users, likes and token shards move
    together) keep the learned profile and bring the triggers: a like there learns (= its replay)
    and its unlike gives the profile back.  Then the shards move back (other tests see no change)."""
    user_id = pick(placed, 300, 1)[0]
    with connect_to(cluster_url) as conn:
        stated = {user_id: stored(conn, user_id)}
        conn.execute(INSERT, (user_id, outfits[0], T0))
        learned = stored(conn, user_id)
        shard, host, port = shard_of(conn, user_id)
        target = next(w for w in citus_cluster.workers() if w.port != port)
        move(conn, user_id, ("127.0.0.1", target.port))
        try:
            assert shard_of(conn, user_id) == (shard, "127.0.0.1", target.port)
            with connect_to(target.dsn()) as worker:  # the triggers came with the shard
                triggers = worker.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY 1",
                    (f"ootd.likes_{shard}",),
                ).fetchall()
            assert [t for (t,) in triggers] == [
                f"likes_learn_deleted_{shard}",
                f"likes_learn_inserted_{shard}",
                f"likes_learn_truncated_{shard}",
                f"likes_learn_updated_{shard}",
            ]
            assert stored(conn, user_id) == learned  # moved as it was
            assert conn.execute("SELECT ootd.like(%s, %s)", (user_id, outfits[1])).fetchone() == (True,)
            assert likes_count(conn, user_id) == 2
            assert_learned(conn, [user_id], stated)
            assert conn.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfits[1])).fetchone() == (True,)
            assert stored(conn, user_id) == learned
        finally:
            move(conn, user_id, (host, port))
        assert shard_of(conn, user_id) == (shard, host, port)
        assert conn.execute("SELECT ootd.unlike(%s, %s)", (user_id, outfits[0])).fetchone() == (True,)
        assert stored(conn, user_id) == stated[user_id]


def test_truncate_of_likes_is_refused_on_citus_and_changes_nothing(
    cluster_url: str, placed: dict[int, list[int]], outfits: list[int]
) -> None:
    users = pick(placed, 310, 1)
    snapshot = (
        "SELECT (SELECT count(*) FROM ootd.likes), "
        "(SELECT md5(string_agg(u::text, '|' ORDER BY u.id)) FROM ootd.users u)"
    )
    with connect_to(cluster_url) as conn:
        stated = stored_all(conn, users)
        for user_id in users:
            conn.execute(INSERT, (user_id, outfits[0], T0))
        before = conn.execute(snapshot).fetchone()
        assert before[0] == 2
        with pytest.raises(psycopg.errors.FeatureNotSupported) as caught:
            conn.execute("TRUNCATE ootd.likes")
        assert caught.value.diag.message_primary == REFUSED_TRUNCATE
        assert conn.execute(snapshot).fetchone() == before
        forget(conn, users, stated)
