"""Test fixtures: one real embedded PostgreSQL (with pgvector) per session.

The schema is migrated once (`alembic upgrade head`) into a template database;
each test that needs data gets its own `CREATE DATABASE ... TEMPLATE` copy,
so tests may commit, open several connections and never see each other.

Required markers: `OOTD_REQUIRE_MARKERS=browser,cluster` (set by .ci/run) makes the
tests carrying one of those markers mandatory: such a test that skips (no
Chromium, no Citus) fails instead, and the run fails unless at least one test
of each listed marker ran.  Unset (a workstation), they skip, saying why.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from db import REPO_ROOT
from db.server import EmbeddedServer, ReplicaServer

REQUIRE_MARKERS_ENV = "OOTD_REQUIRE_MARKERS"
TEMPLATE = "ootd_template"
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_counter = itertools.count(1)


# ------------------------------------------------------------------ replicas --
@dataclass(frozen=True)
class Pair:
    """A primary and its streaming hot standby (tests/test_replica.py, tests/test_api_replicas.py)."""

    primary: EmbeddedServer
    replica: ReplicaServer

    @property
    def home(self) -> Path:
        return self.primary.home


@contextmanager
def replica_pair(home: Path, users: int, seed: int, day) -> Iterator[Pair]:
    """A primary in `home`, migrated, `users` seeded, the offline pools of `day` and of today, and
    a replica that has replayed it all; both stopped on the way out."""
    from datetime import UTC, datetime

    from batch.nightly import NightlyConfig, run_nightly
    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import connect

    primary = EmbeddedServer(home, settings=TEST_SETTINGS)
    replica = primary.replica()
    try:
        url = primary.ensure_running()
        migrate(url)
        with connect(url) as conn:
            seed_users(conn, users, seed)
        run_nightly(url, NightlyConfig(day=day, llm="offline", serve_ahead=True))
        today = datetime.now(UTC).date()
        if today != day:
            run_nightly(url, NightlyConfig(day=today, llm="offline", serve_ahead=True))
        assert primary.start_replica() == replica
        replica.wait_for_replay(timeout=120)
        yield Pair(primary, replica)
    finally:
        try:
            replica.stop("fast")
        finally:
            primary.stop("fast")


# --------------------------------------------------------- required markers --
_RAN = pytest.StashKey[dict]()


def required_markers() -> tuple[str, ...]:
    """The markers OOTD_REQUIRE_MARKERS lists (comma-separated); only those are checked."""
    return tuple(dict.fromkeys(m.strip() for m in os.environ.get(REQUIRE_MARKERS_ENV, "").split(",") if m.strip()))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RAN] = {marker: 0 for marker in required_markers()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A required test that skipped is reported as failed (an error when a fixture skipped), with the reason."""
    outcome = yield
    ran = item.config.stash.get(_RAN, {})
    markers = [m for m in ran if item.get_closest_marker(m) is not None]
    if not markers:
        return
    report = outcome.get_result()
    if report.when == "call" and not report.skipped:
        for marker in markers:
            ran[marker] += 1
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"required test skipped ({REQUIRE_MARKERS_ENV} lists {', '.join(markers)}): {reason}\n"
            f"(this run must execute it; unset {REQUIRE_MARKERS_ENV} to allow the skip on a workstation)"
        )


def _missing_markers(config: pytest.Config) -> list[str]:
    if config.option.collectonly:  # nothing runs in a --collect-only session
        return []
    return [marker for marker, count in config.stash.get(_RAN, {}).items() if count == 0]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a required marker had no test run at all (none collected, or all deselected)."""
    if _missing_markers(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for marker in _missing_markers(config):
        terminalreporter.write_line(
            f"FAILED: no test marked {marker!r} ran, and {REQUIRE_MARKERS_ENV} requires one "
            f"({REQUIRE_MARKERS_ENV}={os.environ.get(REQUIRE_MARKERS_ENV, '')})",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path_factory.mktemp("pg"), settings=TEST_SETTINGS)
    server.ensure_running()
    yield server
    server.stop("fast")


def admin_connect(server: EmbeddedServer) -> psycopg.Connection:
    return psycopg.connect(server.dsn("postgres"), autocommit=True)


@pytest.fixture(scope="session")
def template_url(pg_server: EmbeddedServer) -> str:
    """A database migrated to head, used as the template for every test database."""
    from cli.main import migrate

    with admin_connect(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = pg_server.dsn(TEMPLATE)
    migrate(url)
    return url


def create_database(server: EmbeddedServer, template: str | None) -> str:
    name = f"test_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    with admin_connect(server) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return name


def drop_database(server: EmbeddedServer, name: str) -> None:
    with admin_connect(server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(pg_server: EmbeddedServer, template_url: str) -> Iterator[str]:
    """URL of a fresh database holding the migrated schema (no users)."""
    name = create_database(pg_server, TEMPLATE)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.fixture
def empty_db_url(pg_server: EmbeddedServer) -> Iterator[str]:
    """URL of a fresh, empty database (no schema)."""
    name = create_database(pg_server, None)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as connection:
        from pgvector.psycopg import register_vector

        register_vector(connection)
        yield connection


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `ootd ...` as a user would: a separate process, its own environment."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "OOTD_HOME")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO_ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


SEEDED_TEMPLATE = "ootd_seeded_template"
SEEDED_USERS = 10_000


@pytest.fixture(scope="session")
def seeded_template(pg_server: EmbeddedServer, template_url: str) -> str:
    """A template holding the schema plus 10,000 users seeded with seed 42."""
    from batch.seed import seed_users
    from db.connect import connect

    with admin_connect(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SEEDED_TEMPLATE}")
        conn.execute(f"CREATE DATABASE {SEEDED_TEMPLATE} TEMPLATE {TEMPLATE}")
    with connect(pg_server.dsn(SEEDED_TEMPLATE)) as conn:
        seed_users(conn, SEEDED_USERS, 42)
    return SEEDED_TEMPLATE


@pytest.fixture
def seeded_url(pg_server: EmbeddedServer, seeded_template: str) -> Iterator[str]:
    """URL of a fresh database with the schema and 10,000 seeded users."""
    name = create_database(pg_server, seeded_template)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


SERVED_TEMPLATE = "ootd_served_template"
SERVED_DAY = "2026-04-20"


@pytest.fixture(scope="session")
def served_template(pg_server: EmbeddedServer, seeded_template: str) -> str:
    """The seeded template plus the offline nightly pools of SERVED_DAY."""
    from datetime import date

    from batch.nightly import NightlyConfig, run_nightly

    with admin_connect(pg_server) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SERVED_TEMPLATE}")
        conn.execute(f"CREATE DATABASE {SERVED_TEMPLATE} TEMPLATE {seeded_template}")
    run_nightly(
        pg_server.dsn(SERVED_TEMPLATE),
        NightlyConfig(day=date.fromisoformat(SERVED_DAY), llm="offline", serve_ahead=True),  # feeds served ahead
    )
    return SERVED_TEMPLATE


@pytest.fixture
def served_url(pg_server: EmbeddedServer, served_template: str) -> Iterator[str]:
    """URL of a fresh database with 10,000 users and the pools of SERVED_DAY."""
    name = create_database(pg_server, served_template)
    yield pg_server.dsn(name)
    drop_database(pg_server, name)


def populate(url: str, users: int, seed: int, day: date, *, migrate_first: bool = False) -> str:
    """`url` (migrated first if asked: on a coordinator that distributes), `users` seeded with `seed`, and
    the offline pools of `day`, generated one request at a time so that outfit ids (which the feed's
    tie-break hashes) are assigned in the same order on a cluster and on a single node."""
    from batch.nightly import NightlyConfig, run_nightly
    from batch.seed import seed_users
    from cli.main import migrate
    from db.connect import connect

    if migrate_first:
        assert migrate(url) == "upgrade"
    with connect(url) as conn:
        seed_users(conn, users, seed)
    assert run_nightly(url, NightlyConfig(day=day, llm="offline", concurrency=1)).failed == []
    return url


#: The OS user the security tests attack as (tests/test_security.py, tests/cluster/test_citus_api.py).
ATTACKER = "nobody"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another OS user needs root (CI runs as root)")


def as_attacker(*argv: str) -> subprocess.CompletedProcess:
    """`argv` run as another OS user of the machine (runuser), with no input."""
    return subprocess.run(
        ["runuser", "-u", ATTACKER, "--", *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
