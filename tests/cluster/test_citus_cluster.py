"""The local Citus cluster (`ootd db citus ...`, db/citus.py): it forms, distributes pgvector data, survives restarts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from cli.main import main
from db import citus
from db.citus import CitusCluster, CitusUnavailable

pytestmark = pytest.mark.cluster


def connect(cluster: CitusCluster) -> psycopg.Connection:
    return psycopg.connect(cluster.dsn(), autocommit=True)


def test_cluster_has_two_active_workers_and_both_extensions_on_every_node(citus_cluster: CitusCluster) -> None:
    with connect(citus_cluster) as conn:
        workers = conn.execute("SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY 2").fetchall()
    assert workers == [("127.0.0.1", worker.port) for worker in citus_cluster.workers()]
    for node in citus_cluster.nodes():
        with psycopg.connect(node.dsn(), autocommit=True) as conn:
            names = conn.execute("SELECT extname FROM pg_extension WHERE extname IN ('citus', 'vector') ORDER BY 1")
            assert [name for (name,) in names] == ["citus", "vector"], node.home.name


def test_up_again_is_the_same_cluster(citus_cluster: CitusCluster) -> None:
    with connect(citus_cluster) as conn:
        before = conn.execute("SELECT nodeid, nodename, nodeport, groupid FROM pg_dist_node ORDER BY 1").fetchall()
    assert citus_cluster.up() == citus_cluster.dsn()
    assert citus_cluster.up(2) == citus_cluster.dsn()
    with connect(citus_cluster) as conn:
        after = conn.execute("SELECT nodeid, nodename, nodeport, groupid FROM pg_dist_node ORDER BY 1").fetchall()
    assert after == before
    assert len(before) == 3  # the coordinator (group 0) and 2 workers


def test_up_refuses_to_shrink_the_cluster(citus_cluster: CitusCluster) -> None:
    with pytest.raises(citus.ServerError, match="has 2 workers; it is never shrunk"):
        citus_cluster.up(1)


def test_cli_url_and_status_name_the_cluster_in_ootd_home(
    citus_cluster: CitusCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OOTD_HOME", str(citus_cluster.home.parent))
    monkeypatch.setenv("DATABASE_URL", "postgresql://ignored@/nowhere")  # the cluster commands do not use it
    assert main(["db", "citus", "url"]) == 0
    assert capsys.readouterr().out == citus_cluster.dsn() + "\n"
    assert main(["db", "citus", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["coordinator", "running"],
        ["worker1", "running"],
        ["worker2", "running"],
    ]


def test_distributed_and_reference_tables_with_vector_columns(citus_cluster: CitusCluster) -> None:
    with connect(citus_cluster) as conn:
        conn.execute("CREATE TABLE probe_users (id bigint PRIMARY KEY, taste vector(3) NOT NULL)")
        conn.execute("SELECT create_distributed_table('probe_users', 'id')")
        conn.execute("CREATE TABLE probe_outfits (id bigint PRIMARY KEY, embedding vector(3) NOT NULL)")
        conn.execute("SELECT create_reference_table('probe_outfits')")
        conn.execute(
            "INSERT INTO probe_users SELECT i, ARRAY[i, 40 - i, 1]::real[]::vector FROM generate_series(1, 39) i"
        )
        conn.execute("INSERT INTO probe_outfits VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]')")
        shard_nodes = conn.execute(
            "SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'probe_users'::regclass ORDER BY 1"
        ).fetchall()
        assert shard_nodes == [(worker.port,) for worker in citus_cluster.workers()]
        reference_nodes = conn.execute(
            "SELECT DISTINCT nodeport FROM citus_shards WHERE table_name = 'probe_outfits'::regclass"
        ).fetchall()
        assert {port for (port,) in reference_nodes} >= {worker.port for worker in citus_cluster.workers()}
        nearest = conn.execute(  # a distributed table joined with a reference table, by cosine distance
            "SELECT u.id, o.id FROM probe_users u CROSS JOIN LATERAL"
            " (SELECT id FROM probe_outfits ORDER BY embedding <=> u.taste LIMIT 1) o"
            " WHERE u.id IN (5, 35) ORDER BY u.id"
        ).fetchall()
        assert nearest == [(5, 2), (35, 1)]
        closest = conn.execute("SELECT id FROM probe_users ORDER BY taste <-> '[10.2,29.8,1]' LIMIT 3").fetchall()
        assert closest == [(10,), (11,), (9,)]  # a top-k merged across the shards of both workers


def test_cluster_survives_a_worker_restart(citus_cluster: CitusCluster) -> None:
    with connect(citus_cluster) as conn:
        conn.execute("CREATE TABLE restart_probe (id bigint PRIMARY KEY, n int NOT NULL)")
        conn.execute("SELECT create_distributed_table('restart_probe', 'id')")
        conn.execute("INSERT INTO restart_probe SELECT i, i FROM generate_series(1, 100) i")
        worker = citus_cluster.workers()[0]
        assert worker.stop("immediate")  # a crash: no shutdown checkpoint
        with pytest.raises(psycopg.OperationalError, match="connection to the remote node"):
            conn.execute("SELECT count(*), sum(n) FROM restart_probe")
        citus_cluster.up()
        assert worker.is_running()
        # the same coordinator session reconnects to the restarted worker
        assert conn.execute("SELECT count(*), sum(n) FROM restart_probe").fetchone() == (100, 5050)
        conn.execute("UPDATE restart_probe SET n = n + 1")  # a multi-shard write (2PC) on every worker
        assert conn.execute("SELECT sum(n) FROM restart_probe").fetchone() == (5150,)


def test_without_citus_or_a_source_the_error_names_ootd_citus_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(citus, "citus_installed", lambda: False)
    monkeypatch.delenv(citus.SOURCE_ENV, raising=False)
    monkeypatch.setattr(citus, "VENDORED_SOURCE", tmp_path / "missing.tar.gz")
    with pytest.raises(CitusUnavailable, match="OOTD_CITUS_SOURCE names no source tarball"):
        citus.ensure_citus()


def test_the_vendored_source_is_the_checked_release_and_a_tampered_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(citus.SOURCE_ENV, raising=False)
    assert citus.citus_source() == citus.VENDORED_SOURCE  # a clone alone builds Citus: no OOTD_CITUS_SOURCE
    assert hashlib.sha256(citus.VENDORED_SOURCE.read_bytes()).hexdigest() == citus.VENDORED_SHA256
    assert (
        (citus.VENDORED_SOURCE.parent / "citus-14.0.1.LICENSE")
        .read_text()
        .lstrip()
        .startswith("GNU AFFERO GENERAL PUBLIC LICENSE")
    )
    tampered = tmp_path / "citus-14.0.1.tar.gz"
    tampered.write_bytes(citus.VENDORED_SOURCE.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(citus, "VENDORED_SOURCE", tampered)
    monkeypatch.setattr(citus, "citus_installed", lambda: False)
    built = []
    monkeypatch.setattr(citus, "_build", lambda *a: built.append(a))
    with pytest.raises(CitusUnavailable, match=r"has sha256 [0-9a-f]{64}, not the vendored release's acfa9a77"):
        citus.ensure_citus()
    assert built == []  # nothing was extracted or built
