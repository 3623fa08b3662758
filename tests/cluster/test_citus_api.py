"""The HTTP API on a real Citus cluster, as production runs it: `create_app` on the coordinator, every
pooled connection acting as `ootd_api` (issue 25, item 2).

Feeds, likes, unlikes, the simulator and an experiment's variant are asked through the API and
compared with a single node that has the same users (seed 42), day and pools; a worker that
cannot be reached makes `/readyz` not ready, and no error body names a node's host or port.
The nodes ask every connection for its password: another OS user gets nowhere.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.app import create_app
from api.auth import issue_token
from batch.nightly import NightlyConfig, run_nightly
from db.citus import NODE_ROLES, CitusCluster
from db.server import EmbeddedServer, bin_dir
from tests.conftest import TEMPLATE, as_attacker, as_root, create_database, drop_database, populate, run_cli

pytestmark = pytest.mark.cluster

DAY = date(2026, 4, 20)
USERS = 2_000
SEED = 42
SECRET = "citus-api-secret-" + "s" * 48
INSTANTS = [f"{DAY}T09:00:00Z", f"{DAY}T21:00:00Z"]
WHAT_IF = {
    "city": "Torrance",
    "style_dna": {"archetype": "Minimal", "preferred_colors": ["Navy"]},
    "style_rules": {"disliked_categories": ["Dress"], "disliked_colors": [], "liked_categories": []},
}
EXPERIMENT = {"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}


@pytest.fixture(scope="module")
def cluster_url(citus_cluster: CitusCluster) -> str:
    return populate(citus_cluster.dsn(), USERS, SEED, DAY, migrate_first=True)


@pytest.fixture(scope="module")
def single_url(pg_server: EmbeddedServer, template_url: str) -> Iterator[str]:
    name = create_database(pg_server, TEMPLATE)
    yield populate(pg_server.dsn(name), USERS, SEED, DAY)
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def apps(cluster_url: str, single_url: str):
    """The API on the coordinator and on the single node, each acting as ootd_api."""
    made = {
        "cluster": create_app(cluster_url, SECRET, pool_max=2),
        "single": create_app(single_url, SECRET, pool_max=2),
    }
    yield {name: app.test_client() for name, app in made.items()}
    for app in made.values():
        app.extensions["ootd"].db.close()


def bearer(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user_id, SECRET)}"}


def users_on_both_workers(cluster_url: str, count: int) -> list[int]:
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT u, s.nodeport FROM generate_series(1, %s) u "
            "JOIN citus_shards s ON s.table_name = 'ootd.users'::regclass "
            " AND s.shardid = get_shard_id_for_distribution_column('ootd.users', u) ORDER BY u",
            (USERS,),
        ).fetchall()
    by_port: dict[int, list[int]] = {}
    for user_id, port in rows:
        by_port.setdefault(port, []).append(user_id)
    assert len(by_port) == 2
    return [u for ids in by_port.values() for u in ids[:count]]


def assert_names_no_node(body: bytes, cluster: CitusCluster) -> None:
    text = body.decode()
    assert "127.0.0.1" not in text and "localhost" not in text, text
    for node in cluster.nodes():
        assert str(node.port) not in text, text


# ---------------------------------------------------------------------------------------- serving --
def test_the_api_role_serves_feeds_on_citus_equal_to_a_single_nodes(apps, cluster_url: str) -> None:
    users = users_on_both_workers(cluster_url, 15)
    for user_id in users:
        for at in INSTANTS:
            answers = {
                name: client.get(f"/v1/users/{user_id}/feed?at={at}&limit=5", headers=bearer(user_id))
                for name, client in apps.items()
            }
            assert answers["cluster"].status_code == 200, answers["cluster"].get_json()
            assert answers["cluster"].get_json() == answers["single"].get_json(), (user_id, at)
            assert len(answers["cluster"].get_json()["items"]) == 5


def test_likes_and_unlikes_through_the_api_on_citus_learn_as_on_a_single_node(
    apps, cluster_url: str, single_url: str
) -> None:
    users = users_on_both_workers(cluster_url, 3)
    profile = "SELECT likes_count, style_dna, taste::text FROM ootd.users WHERE id = %s"
    for user_id in users:
        feed = apps["single"].get(f"/v1/users/{user_id}/feed?at={INSTANTS[0]}", headers=bearer(user_id)).get_json()
        outfit_id = feed["items"][0]["outfit_id"]
        for name, client in apps.items():
            url = f"/v1/users/{user_id}/likes"
            assert client.post(url, json={"outfit_id": outfit_id}, headers=bearer(user_id)).status_code == 201, name
            assert client.post(url, json={"outfit_id": outfit_id}, headers=bearer(user_id)).status_code == 200, name
        with psycopg.connect(cluster_url) as cluster, psycopg.connect(single_url) as single:
            assert cluster.execute(profile, (user_id,)).fetchone() == single.execute(profile, (user_id,)).fetchone()
        for name, client in apps.items():
            response = client.delete(f"/v1/users/{user_id}/likes/{outfit_id}", headers=bearer(user_id))
            assert response.status_code == 200 and response.get_json()["removed"] is True, name
        with psycopg.connect(cluster_url) as conn:
            assert conn.execute("SELECT count(*) FROM ootd.likes WHERE user_id = %s", (user_id,)).fetchone() == (0,)


def test_the_simulator_on_citus_answers_as_on_a_single_node(apps, cluster_url: str) -> None:
    user_id = users_on_both_workers(cluster_url, 1)[-1]
    when = {"date": DAY.isoformat(), "time": "18:30"}
    for path, body, headers in (
        ("/v1/simulate", {"profile": WHAT_IF, **when}, {}),
        (f"/v1/users/{user_id}/simulate", when, bearer(user_id)),
    ):
        answers = {name: client.post(path, json=body, headers=headers) for name, client in apps.items()}
        assert answers["cluster"].status_code == 200, answers["cluster"].get_json()
        assert answers["cluster"].get_json() == answers["single"].get_json(), path


def test_an_experiments_variant_reaches_the_api_on_citus(apps, cluster_url: str, single_url: str) -> None:
    users = users_on_both_workers(cluster_url, 10)
    conns = [psycopg.connect(url, autocommit=True) for url in (cluster_url, single_url)]
    try:
        for conn in conns:
            conn.execute("SELECT * FROM ootd.start_experiment('api_on_citus', %s)", (Jsonb(EXPERIMENT),))
        variants = set()
        for user_id in users:
            answers = {
                name: client.get(f"/v1/users/{user_id}/feed?at={INSTANTS[1]}", headers=bearer(user_id)).get_json()
                for name, client in apps.items()
            }
            assert answers["cluster"] == answers["single"], user_id
            variants.add(answers["cluster"]["variant"])
        assert variants == {"control", "more_cosine"}
    finally:
        for conn in conns:
            conn.execute("SELECT ootd.end_experiment('api_on_citus')")
            conn.close()


def test_readyz_is_ready_on_citus_and_not_ready_while_a_worker_is_down(
    apps, citus_cluster: CitusCluster, cluster_url: str
) -> None:
    client = apps["cluster"]
    today = datetime.now(timezone.utc).date()  # readiness asks for the pools of the UTC date
    run_nightly(cluster_url, NightlyConfig(day=today, llm="offline", concurrency=1))
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    worker = citus_cluster.workers()[0]
    user_id = next(u for u in users_on_both_workers(cluster_url, 5) if _port_of(cluster_url, u) == worker.port)
    worker.stop("immediate")
    try:
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.get_json()["error"]["code"] == "not_ready"
        assert "unreachable" in down.get_json()["error"]["message"]
        assert_names_no_node(down.data, citus_cluster)
        feed = client.get(f"/v1/users/{user_id}/feed?at={INSTANTS[0]}", headers=bearer(user_id))
        assert feed.status_code == 503
        assert feed.get_json()["error"]["code"] == "database_unavailable"
        assert_names_no_node(feed.data, citus_cluster)
    finally:
        worker.ensure_running()
    assert client.get("/readyz").status_code == 200
    assert client.get(f"/v1/users/{user_id}/feed?at={INSTANTS[0]}", headers=bearer(user_id)).status_code == 200


def _port_of(cluster_url: str, user_id: int) -> int:
    with psycopg.connect(cluster_url) as conn:
        return conn.execute(
            "SELECT nodeport FROM citus_shards WHERE table_name = 'ootd.users'::regclass "
            "AND shardid = get_shard_id_for_distribution_column('ootd.users', %s)",
            (user_id,),
        ).fetchone()[0]


# ---------------------------------------------------------------------------------------- security --
def test_every_node_asks_every_connection_for_its_password(citus_cluster: CitusCluster, cluster_url: str) -> None:
    with psycopg.connect(cluster_url) as conn:
        assert set(conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()) == {
            ("scram-sha-256",)
        }
    for node in citus_cluster.nodes():
        for role in NODE_ROLES:
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(f"host=127.0.0.1 port={node.port} user={role} dbname=ootd passfile=/dev/null")
        with psycopg.connect(node.dsn()) as conn:  # node-to-node credentials: every node knows them
            roles = conn.execute("SELECT rolename::text FROM pg_dist_authinfo WHERE nodeid = 0 ORDER BY 1").fetchall()
            assert roles == sorted((role,) for role in NODE_ROLES)


@as_root
def test_another_os_user_gets_nowhere_on_any_node(citus_cluster: CitusCluster, cluster_url: str) -> None:
    for node in citus_cluster.nodes():
        for conninfo in (
            f"host=127.0.0.1 port={node.port} user=ootd_owner dbname=ootd",
            f"host=127.0.0.1 port={node.port} user=postgres dbname=ootd",
            f"host={node.socket_dir} port={node.port} user=postgres dbname=ootd",
            f"host=127.0.0.1 port={node.port} user=postgres dbname=ootd passfile={node.password_file}",
        ):
            result = as_attacker(str(bin_dir() / "psql"), "-w", conninfo, "-Atc", "SELECT 1")
            assert result.returncode != 0, conninfo
            assert "no password supplied" in result.stderr or "Permission denied" in result.stderr, result.stderr


# -------------------------------------------------------------------------------------- evaluation --
def test_ootd_evaluate_on_citus_says_it_is_single_node_only_and_writes_nothing(cluster_url: str) -> None:
    result = run_cli("evaluate", "--date", DAY.isoformat(), "--users", "10", env={"DATABASE_URL": cluster_url})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "ootd: error: the evaluation runs on a single node only, and this database is a Citus node"
    ), result.stderr
    assert "(SQLSTATE 0A000)" in result.stderr
    with psycopg.connect(cluster_url) as conn:
        assert conn.execute("SELECT count(*) FROM ootd.evaluations").fetchone() == (0,)
