"""Nobody else on the machine gets into the embedded server (issue 25, item 3).

Each attack is tried as another OS user (`nobody`, through `runuser`), as a
local attacker would: the socket, the password file, a connection without the
password, and a server made by an older ootd that trusted every local user.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from db.server import HBA_MARKER, LOG_FILES_KEPT, SUPERUSER, SYSTEM_USER, EmbeddedServer, bin_dir
from tests.conftest import as_attacker, as_root


def psql_as_attacker(conninfo: str) -> subprocess.CompletedProcess:
    """The issue's attack: superuser through the socket, then a command run by the server."""
    return as_attacker(
        str(bin_dir() / "psql"),
        "-w",  # never prompt
        conninfo,
        "-Atc",
        "CREATE TEMP TABLE o(t text); COPY o FROM PROGRAM 'id'; SELECT t FROM o",
    )


@pytest.fixture
def server(tmp_path: Path):
    home = tmp_path / "home"
    server = EmbeddedServer(home)
    server.ensure_running()
    yield server
    server.stop("immediate")


@as_root
def test_another_os_user_cannot_reach_the_socket(server: EmbeddedServer):
    mode = stat.S_IMODE(server.socket_dir.stat().st_mode)
    assert mode == 0o700, oct(mode)
    result = psql_as_attacker(f"host={server.socket_dir} port={server.port} user={SUPERUSER} dbname=ootd")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr, result.stderr
    assert "uid=" not in result.stdout


@as_root
def test_reaching_the_socket_is_not_enough_without_the_password(server: EmbeddedServer):
    socket_file = server.socket_dir / f".s.PGSQL.{server.port}"
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o700  # unix_socket_permissions
    os.chmod(server.socket_dir, 0o755)  # as if directory and socket were open: the server itself must refuse
    os.chmod(socket_file, 0o777)
    try:
        for user in (SUPERUSER, "ootd_owner", "ootd_api"):
            result = psql_as_attacker(f"host={server.socket_dir} port={server.port} user={user} dbname=ootd")
            assert result.returncode != 0
            assert "no password supplied" in result.stderr or "password authentication failed" in result.stderr, (
                result.stderr
            )
            assert "uid=" not in result.stdout
    finally:
        os.chmod(socket_file, 0o700)
        os.chmod(server.socket_dir, 0o700)


@as_root
def test_the_password_file_is_the_server_users_alone(server: EmbeddedServer):
    info = server.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam(SYSTEM_USER).pw_uid
    result = as_attacker("cat", str(server.password_file))
    assert result.returncode != 0 and "Permission denied" in result.stderr


@as_root
def test_the_server_runs_in_its_own_group_never_roots(server: EmbeddedServer):
    pid = int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    entry = pwd.getpwnam(SYSTEM_USER)
    assert status["Uid"].split() == [str(entry.pw_uid)] * 4
    assert status["Gid"].split() == [str(entry.pw_gid)] * 4
    assert entry.pw_gid != 0
    assert status["Groups"].split() in ([], [str(entry.pw_gid)])


def test_every_rule_of_pg_hba_asks_for_a_scram_password(server: EmbeddedServer):
    with psycopg.connect(server.dsn("postgres")) as conn:
        methods = {row[0] for row in conn.execute("SELECT auth_method FROM pg_catalog.pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={server.socket_dir} port={server.port} user={SUPERUSER} dbname=ootd passfile=/dev/null")


def test_a_server_made_with_trust_by_an_older_ootd_is_converted_when_found(server: EmbeddedServer):
    hba = server.pgdata / "pg_hba.conf"
    hba.write_text("local all all trust\nlocal replication all trust\n")  # what initdb --auth=trust wrote
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {SUPERUSER} PASSWORD NULL")
        conn.execute("SELECT pg_catalog.pg_reload_conf()")
    lines: list[str] = []
    server.ensure_running(lines.append)
    assert hba.read_text().startswith(HBA_MARKER)
    assert lines == [
        f"ootd: the server in {server.home} now requires its password ({server.password_file}); trust removed"
    ]
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={server.socket_dir} port={server.port} user={SUPERUSER} dbname=ootd passfile=/dev/null")
    with psycopg.connect(server.dsn()) as conn:  # the DSN ootd prints still works
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_log_rotates_by_size_and_ootd_keeps_the_newest_files(tmp_path: Path):
    server = EmbeddedServer(tmp_path / "home", settings={"log_rotation_size": "'64kB'"})
    server.ensure_running()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for _ in range(LOG_FILES_KEPT + 3):  # file names go by the second: 80 kB a second, 13 seconds
                for _ in range(80):
                    conn.execute("DO $$ BEGIN RAISE WARNING '%', repeat('x', 1000); END $$")
                time.sleep(1.05)
        files = sorted(server.log_dir.glob("postgresql-*.log"))
        assert len(files) > LOG_FILES_KEPT
        # no rotation by age (log_rotation_age 0): every file but the current one was left for its size
        assert min(f.stat().st_size for f in files[:-1]) >= 64 * 1024
        server.ensure_running()  # any command that finds the server prunes
        kept = sorted(server.log_dir.glob("postgresql-*.log"))
        assert kept == files[-LOG_FILES_KEPT:]
    finally:
        server.stop("immediate")
