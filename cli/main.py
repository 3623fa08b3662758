"""`ootd`: the command line.

Every command is a thin shell over a function in db/, batch/ or api/.  Errors a
person can cause (bad input, no database) print one line and exit 1; usage
errors exit 2 (argparse).  Tracebacks are for bugs only (set OOTD_DEBUG=1 to
see them for every error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from db import REPO_ROOT


# ------------------------------------------------------------------ helpers --
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1..65535), got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _json_object(text: str) -> str:
    """Reject malformed JSON before it reaches the database, with the position."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"malformed JSON ({exc.msg} at column {exc.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return text


class CommandError(Exception):
    """A one-line, user-facing failure."""


# ----------------------------------------------------------------- commands --
def cmd_db(args: argparse.Namespace) -> None:
    from db.server import default_server

    if args.action == "citus":
        return cmd_db_citus(args)
    if args.action == "url":  # a server this starts says so on stderr, and its cache is refilled
        from db.connect import database_url

        print(database_url())
        return
    if os.environ.get("DATABASE_URL"):
        action = f"replica {args.replica_action}" if args.action == "replica" else args.action
        raise CommandError(f"'ootd db {action}' manages the embedded server; DATABASE_URL is set")
    server = default_server()
    replica = server.replica()

    def announce(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.action == "start":
        url = server.ensure_running(announce=announce)
        print(url)
        from db.connect import rehydrate_cache

        rehydrate_cache(url)
    elif args.action == "stop":  # the replica first: it would only retry its primary
        if replica.stop():
            print("replica stopped")
        print("stopped" if server.stop() else "not running")
    elif args.action == "status":
        running = server.is_running()
        print(f"{'running' if running else 'stopped'}: {server.pgdata}")
        if replica.exists():
            print(f"replica {'running' if replica.is_running() else 'stopped'}: {replica.pgdata}")
        if not running:
            raise SystemExit(3)
    elif args.replica_action in ("start", "url"):  # creates the replica (pg_basebackup) if needed
        print(server.start_replica(announce=announce).dsn())
    else:
        print("stopped" if replica.stop() else "not running")


def cmd_db_citus(args: argparse.Namespace) -> None:
    """The local Citus cluster (db/citus.py); DATABASE_URL does not matter to it."""
    from db.citus import default_cluster

    cluster = default_cluster()
    if args.citus_action == "up":
        print(cluster.up(args.workers, progress=lambda line: print(line, file=sys.stderr, flush=True)))
    elif args.citus_action == "url":
        print(cluster.dsn())
    elif args.citus_action == "down":
        stopped = cluster.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else "not running")
    else:
        nodes = cluster.status()
        for name, running, port in nodes:
            print(f"{name} {'running' if running else 'stopped'} on {cluster.home / name} (port {port})")
        if not nodes or not all(running for _, running, _ in nodes):
            raise SystemExit(3)


def migrate(url: str | None = None, revision: str = "head", allow_data_loss: bool = False, citus: bool = False) -> str:
    """`alembic upgrade <revision>` on `url` (default: DATABASE_URL or embedded), or `alembic downgrade
    <revision>` when `revision` is behind the database's; returns "upgrade" or "downgrade".

    A downgrade that would destroy rows refuses (CommandError, nothing changed) unless allow_data_loss.
    On a Citus coordinator (the citus extension exists, or `citus`: then it is created) the
    migrations run with DDL propagation off, as on a single node, and db/citus.sql then
    distributes the schema (idempotent; docs/scaling.md).  An already distributed schema is
    upgraded to head with DDL propagation on (the workers change in the same distributed
    transaction), then db/citus.sql places what the revisions added.

    One `ootd migrate` of a database at a time: a session advisory lock, held from before the Citus
    detection to after the distribution, makes a second one wait, then find nothing to do (and the
    revisions themselves take another, in migrations/env.py, that a DBA's `alembic upgrade` takes too).
    """
    import psycopg

    from db.connect import DatabaseError, database_url
    from migrations.lock import OOTD_MIGRATE, wait_for_lock

    plain = url or database_url()
    try:
        lock = psycopg.connect(plain, autocommit=True)
    except psycopg.Error as exc:
        raise DatabaseError.from_psycopg(exc) from exc
    with lock:  # closing the connection releases the lock, whatever happens
        wait_for_lock(
            lambda statement, params: lock.execute(statement, params).fetchall(), OOTD_MIGRATE, "ootd migrate"
        )
        return _migrate(plain, revision, allow_data_loss, citus)


def _migrate(plain: str, revision: str, allow_data_loss: bool, citus: bool) -> str:
    """migrate(), under its lock."""
    import psycopg
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError as AlembicCommandError
    from sqlalchemy import create_engine, pool
    from sqlalchemy.exc import DBAPIError

    from db.connect import DatabaseError, sqlalchemy_url
    from migrations.guard import CONFIG_ATTRIBUTE, is_downgrade

    target = sqlalchemy_url(plain)
    try:
        on_citus, distributed = _citus_state(plain, create=citus)
    except psycopg.Error as exc:
        raise DatabaseError.from_psycopg(exc) from exc
    if on_citus:  # a distributed schema changes on every node: propagation stays on
        from urllib.parse import quote

        from db.citus import LOCAL_DDL_OPTIONS, UPGRADE_OPTIONS

        options = UPGRADE_OPTIONS if distributed else LOCAL_DDL_OPTIONS
        target += ("&" if "?" in target else "?") + "options=" + quote(options)
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", target.replace("%", "%%"))
    config.attributes[CONFIG_ATTRIBUTE] = allow_data_loss
    try:
        engine = create_engine(target, poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                down = is_downgrade(config, connection, revision)
                if on_citus:
                    _refuse_other_than_head_on_citus(config, revision, down)
                if distributed:
                    _check_upgrade_of_a_distributed_schema(connection, down)
        finally:
            engine.dispose()
        (command.downgrade if down else command.upgrade)(config, revision)
        if on_citus and not down:
            from db.citus import distribute

            distribute(plain)
    except DBAPIError as exc:
        raise DatabaseError.from_psycopg(exc.orig) from exc
    except psycopg.Error as exc:  # a revision's SQL file runs on the raw psycopg connection
        raise DatabaseError.from_psycopg(exc) from exc
    except AlembicCommandError as exc:  # e.g. the downgrade guard's refusal, an unknown revision
        raise CommandError(str(exc)) from None
    return "downgrade" if down else "upgrade"


def _citus_state(url: str, create: bool) -> tuple[bool, bool]:
    """(this database is a Citus coordinator, its ootd schema is already distributed); with
    `create` (--citus) the citus extension is created first if it is missing."""
    import psycopg

    from db.citus import has_citus, is_distributed

    with psycopg.connect(url, autocommit=True) as conn:
        if create and not has_citus(conn):
            conn.execute("CREATE EXTENSION citus")
        if not has_citus(conn):
            return False, False
        return True, is_distributed(conn)


def _refuse_other_than_head_on_citus(config, revision: str, down: bool) -> None:
    """db/citus.sql distributes the head schema: a coordinator only ever migrates to head (a
    distribution begun at an older revision would leave the workers with its function bodies)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(config)
    wanted = scripts.get_revision(revision)
    if down or wanted is None or wanted.revision not in scripts.get_heads():
        raise CommandError(
            f"on a Citus coordinator ootd migrate only goes to head ({', '.join(scripts.get_heads())}), "
            f"not to {revision}: db/citus.sql distributes the head schema (see docs/scaling.md)"
        )


def _check_upgrade_of_a_distributed_schema(connection, down: bool) -> None:
    """An already distributed schema is upgraded with DDL propagation on: the revisions' `SET ROLE
    ootd_owner` makes Citus open its worker connections as ootd_owner, which must be able to log in
    (db/citus.sql gives it LOGIN).  Refused before anything runs: a downgrade, a NOLOGIN owner."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import text

    current = MigrationContext.configure(connection).get_current_revision()
    if down:
        raise CommandError(
            f"the ootd schema on this Citus coordinator is distributed (revision {current}): "
            "it is never downgraded (see docs/scaling.md)"
        )
    login = connection.execute(text("SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'ootd_owner'"))
    if login.scalar() is False:
        raise CommandError(
            f"the ootd schema on this Citus coordinator is distributed (revision {current}) and ootd_owner "
            "cannot log in: an upgrade creates the new objects on the workers as ootd_owner; "
            "run ALTER ROLE ootd_owner LOGIN (db/citus.sql does) and allow it between the nodes in pg_hba.conf "
            "(see docs/scaling.md)"
        )


def cmd_migrate(args: argparse.Namespace) -> None:
    direction = migrate(revision=args.revision, allow_data_loss=args.allow_data_loss, citus=args.citus)
    print(f"{'downgraded' if direction == 'downgrade' else 'migrated'} to {args.revision}")


def cmd_seed(args: argparse.Namespace) -> None:
    from batch.seed import check_request, seed_users
    from db.connect import connect

    check_request(args.users, args.seed)  # before connecting: bad input starts and changes nothing
    with connect() as conn:
        result = seed_users(conn, args.users, args.seed)
    print(
        f"seeded {result.created:,} new users ({result.existing:,} already present) "
        f"for ids 1..{result.requested:,} with seed {args.seed} in {result.seconds:.1f} s"
    )


def cmd_user(args: argparse.Namespace) -> None:
    from db.connect import connect, one

    with connect() as conn:
        row = one(
            conn,
            "put_user",
            {
                "id": args.id,
                "city": args.city,
                "timezone": args.timezone,
                "style_dna": args.dna,
                "style_rules": args.rules,
            },
        )
    print(json.dumps({k: row[k] for k in ("id", "city", "timezone", "style_dna", "style_rules")}))


def cmd_city(args: argparse.Namespace) -> None:
    from db.connect import connect, one

    with connect() as conn:
        row = one(
            conn,
            "add_city",
            {
                "name": args.name,
                "timezone": args.timezone,
                "latitude": args.lat,
                "longitude": args.lon,
                "country": args.country,
                "population_k": args.population_k,
            },
        )
    print(json.dumps(row))


def cmd_summary(args: argparse.Namespace) -> None:
    from cli.report import print_population
    from db.connect import connect

    with connect() as conn:
        print_population(conn)


def _date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def nightly(
    url: str | None,
    day,
    llm: str | None,
    concurrency: int = 4,
    wait: bool = True,
    timeout: float = 60.0,
    force: bool = False,
):
    """Run the nightly batch with a progress bar; returns the report."""
    from batch.nightly import NightlyConfig, run_nightly
    from cli.report import NightlyProgress

    config = NightlyConfig.from_env(
        day, llm, concurrency=concurrency, wait=wait, timeout_s=timeout, force=force, serve_ahead=True
    )
    with NightlyProgress() as progress:
        return run_nightly(url, config, progress=progress)


def cmd_nightly(args: argparse.Namespace) -> None:
    from datetime import datetime, timezone

    from batch.nightly import NightlyBusy
    from cli.report import print_nightly

    day = args.date or datetime.now(timezone.utc).date()
    try:
        report = nightly(None, day, args.llm, args.concurrency, not args.no_wait, args.timeout, args.force)
    except NightlyBusy as exc:
        raise CommandError(str(exc)) from None
    print_nightly(report)
    if report.failed:
        raise SystemExit(4)  # some clusters failed: they keep serving their previous pools


def cmd_demo(args: argparse.Namespace) -> None:
    from batch.seed import check_request, seed_users
    from cli.report import print_population
    from db.connect import connect, database_url

    check_request(args.users, args.seed)  # before anything starts or changes
    url = database_url()
    print(f"database: {url}")
    migrate(url)
    print("schema: migrated to head")
    with connect(url) as conn:
        result = seed_users(conn, args.users, args.seed)
    print(f"seed: {result.created:,} new users, {result.existing:,} already present ({result.seconds:.1f} s)")
    with connect(url) as conn:
        print_population(conn)

    from datetime import datetime, timezone

    from cli.report import print_nightly

    day = args.date or datetime.now(timezone.utc).date()
    print(f"\nnightly batch for {day} (offline stylist, one call per cluster):")
    print_nightly(nightly(url, day, "offline"))

    from cli.report import print_feeds

    print("\nfeeds (zero LLM calls) at two local times:")
    with connect(url) as conn:
        print_feeds(conn, day)
    print('\nNext: psql "$(.venv/bin/ootd db url)" -c "SELECT * FROM ootd.feed(1, now())"')
    _print_serve_hint(1, url)


def _print_serve_hint(user_id: int, url: str | None = None) -> None:
    """How to serve the API and curl a feed, with a token valid for a day (of the user's token generation
    in the database at `url`: a demo re-run after `ootd token revoke 1` prints a token the API accepts)."""
    from api.auth import issue_token, load_secret
    from db.connect import connect, one

    generation = 0
    if url is not None:
        with connect(url) as conn:
            generation = one(conn, "api_token_generation", {"user_id": user_id})["generation"]
    try:
        token = issue_token(user_id, load_secret(create=True), generation=generation)
    except ValueError as exc:  # e.g. OOTD_API_SECRET too short: the demo itself succeeded
        print(f"\nHTTP API: {exc}")
        return
    print("\nHTTP API (gunicorn, 2 workers), in another terminal:  .venv/bin/ootd serve --port 8000")
    print(f"then (this token is user {user_id}'s, valid 24 h; mint others with: .venv/bin/ootd token <id>):")
    print(f'  curl -s -H "Authorization: Bearer {token}" http://127.0.0.1:8000/v1/users/{user_id}/feed')
    print("  the simulator (what-if profiles need no token; a real user needs theirs): http://127.0.0.1:8000/simulator")


def cmd_serve(args: argparse.Namespace) -> None:
    from api.server import ServeConfig, serve
    from db.connect import database_url, rehydrate_cache

    rehydrate_cache(database_url())
    serve(
        ServeConfig(
            host=args.host, port=args.port, workers=args.workers, threads=args.threads, access_log=args.access_log
        )
    )


def _instant(text: str):
    """An ISO 8601 instant; without an offset it is UTC."""
    from datetime import datetime, timezone

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time, e.g. 2026-04-20T16:00+02:00, got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def cmd_feed(args: argparse.Namespace) -> None:
    """One user's feed, as ootd.feed computes it (as DATABASE_URL's user; no token)."""
    from datetime import datetime, timezone

    from db.connect import all_rows, connect

    at = args.at or datetime.now(timezone.utc)
    with connect() as conn:
        rows = all_rows(conn, "feed", (args.user, at, args.limit))
    if not rows:
        raise CommandError(f"no feed for user {args.user} at {at.isoformat()}: no pool for that day (run ootd nightly)")
    first = rows[0]
    print(f"user {args.user} at {at.isoformat(timespec='minutes')}, cluster {first['cluster_id']}: {first['headline']}")
    width = max(len(r["title"]) for r in rows)
    for r in rows:
        print(
            f"{r['rank']:>2}  {r['outfit_id']:>8}  {r['title']:<{width}}  {r['category']:<10} {r['color']:<8} "
            f"{r['daypart']:<8} {r['score']:.3f}"
        )
    if first["relaxed_rules"]:
        print("relaxed: " + ", ".join(first["relaxed_rules"]))
    if first["variant"]:
        print(f"variant: {first['variant']}")


def cmd_token(args: argparse.Namespace) -> None:
    """`ootd token ID [--ttl S]` prints a token of the user's current generation; `ootd token revoke ID`
    raises the generation (ootd.revoke_tokens), so the API refuses every token minted before."""
    from api.auth import MAX_TTL_ENV, issue_token, load_secret, max_ttl_s, secret_file
    from db.connect import DatabaseError, connect, one

    usage = args.token_parser.error  # exits 2, as any usage error
    if args.id == "revoke":
        if args.user is None:
            usage("ootd token revoke USER: which user's tokens to revoke?")
        if args.ttl is not None:
            usage("--ttl applies to minting a token, not to revoke")
        user_id = args.user
        try:
            with connect() as conn:
                generation = one(conn, "revoke_tokens", (user_id,))["generation"]
        except DatabaseError as exc:
            if exc.sqlstate == "P0002":  # unknown user: nothing written
                raise CommandError(exc.message) from None
            raise
        print(f"revoked every token of user {user_id} (token generation now {generation})")
        return
    if args.user is not None:
        usage(f"unexpected argument {args.user} (ootd token ID, or ootd token revoke ID)")
    user_id = args.id
    limit = max_ttl_s()
    if args.ttl is not None and args.ttl > limit:
        raise CommandError(f"--ttl must be at most {limit} seconds ({MAX_TTL_ENV}), got {args.ttl}")
    if os.environ.get("OOTD_API_SECRET") is not None or secret_file().exists():
        load_secret(create=False)  # an unusable secret is reported first
    with connect() as conn:
        if not one(conn, "user_exists", (user_id,))["exists"]:
            raise CommandError(f"unknown user {user_id}")
        generation = one(conn, "api_token_generation", {"user_id": user_id})["generation"]
    print(issue_token(user_id, load_secret(create=True), ttl_s=args.ttl, generation=generation, max_ttl=limit))


def _token_target(text: str) -> int | str:
    """`ootd token`'s first argument: a user id, or the word revoke."""
    return text if text == "revoke" else _positive_int(text)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rich.console import Console

    from cli.evaluate import (
        EvaluationProgress,
        evaluate,
        parse_times,
        print_evaluation,
        print_sweep,
        print_variants,
        timed_out,
    )
    from db.connect import DatabaseError, connect

    if args.online:
        return cmd_evaluate_online(args)
    try:
        times = parse_times(args.at_times)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    by_variant = args.by_variant is not None  # --by-variant alone: True (the running experiment)
    experiment = args.by_variant if isinstance(args.by_variant, str) else None
    progress = EvaluationProgress(Console(stderr=True))
    try:
        with connect() as conn:
            row = evaluate(
                conn,
                args.date,
                args.users,
                times,
                args.limit,
                progress=progress,
                sweep=args.sweep,
                by_variant=by_variant,
                experiment=experiment,
                statement_timeout=args.statement_timeout,
            )
    except DatabaseError as exc:
        if exc.sqlstate == "57014":  # query_canceled: the statement timeout
            raise CommandError(timed_out(args.statement_timeout)) from None
        raise
    finally:
        progress.stop()
    if args.json:
        print(json.dumps(row["metrics"], indent=2, sort_keys=True))
    elif args.sweep:
        print_sweep(row)
    elif by_variant:
        print_variants(row)
    else:
        print_evaluation(row)


def cmd_evaluate_online(args: argparse.Namespace) -> None:
    """`ootd evaluate --online`: simulated users x days in scratch databases, stored in the served one."""
    from rich.console import Console

    from cli.evaluate import ONLINE_ARMS, ONLINE_START, OnlineProgress, evaluate_online, plot_online, print_online
    from db.connect import database_url

    if args.days is None or not 1 <= args.days <= 365:
        raise CommandError("--online needs --days N, 1..365")
    arms = tuple(dict.fromkeys(a.strip() for a in args.arms.split(",") if a.strip()))
    unknown = [a for a in arms if a not in ONLINE_ARMS]
    if unknown or not arms:
        raise CommandError(f"--arms: unknown {', '.join(unknown) or '(none)'}; arms: {', '.join(ONLINE_ARMS)}")
    if not 1 <= args.jobs <= 64:
        raise CommandError("--jobs: 1..64 arms simulated at once")
    progress = OnlineProgress(Console(stderr=True))
    try:
        row = evaluate_online(
            database_url(),
            args.days,
            args.users,
            args.seed,
            args.start or ONLINE_START,
            arms,
            step=progress,
            jobs=args.jobs,
            on_plan=lambda plan: progress.set_total(args.days * len(plan)),
        )
    finally:
        progress.stop()
    path = plot_online(row, args.plot or f"evaluation-{row['id']}.png")
    if args.json:
        print(json.dumps(row, indent=2, sort_keys=True, default=str))
    else:
        print_online(row)
        print(f"plot: {path}")


def cmd_experiment(args: argparse.Namespace) -> None:
    """Thin over ootd.start_experiment / set_experiment_shares / end_experiment / experiment_results."""
    from cli import experiment
    from db.connect import connect

    with connect() as conn:
        if args.experiment_action == "start":
            rows = experiment.start(conn, args.name, args.variants, args.control)
            experiment.print_allocation(f"Experiment {args.name} started", rows)
        elif args.experiment_action == "shares":
            rows = experiment.set_shares(conn, args.name, args.shares)
            experiment.print_allocation(f"Experiment {args.name}: new shares, a new allocation period from now", rows)
        elif args.experiment_action == "end":
            row = experiment.end(conn, args.name)
            print(
                f"experiment {row['name']} ended at {row['ended_at'].isoformat(sep=' ', timespec='seconds')}: "
                "every user is served the weights in force"
            )
        elif args.experiment_action == "list":
            experiment.print_list(experiment.experiments(conn))
        else:
            rows = experiment.results(conn, args.name, args.min_days)
            if not rows:
                raise CommandError(
                    f"unknown experiment {args.name!r}" if args.name else "no experiment has been started"
                )
            experiment.print_results(rows)
    if args.experiment_action in ("start", "shares", "end"):
        _refresh_served_feeds("the experiment changed the weights users are served")


def _refresh_served_feeds(why: str) -> None:
    """After a change that left every served feed stale (feeds are ranked live meanwhile): write them again."""
    from batch.feeds import refresh_feeds, serves_ahead
    from cli.report import describe_feeds

    if not serves_ahead(None):  # a schema before 0020: every feed is ranked live, nothing to refresh
        return
    print(f"served feeds: {why}; computing them again (feeds are ranked live meanwhile)")
    print(f"served feeds: {describe_feeds(refresh_feeds(None))}")


def cmd_feeds(args: argparse.Namespace) -> None:
    """ootd feeds refresh / status: thin over ootd.refresh_feeds and ootd.served_feeds_status."""
    from batch.feeds import feeds_status, refresh_feeds, serves_ahead
    from cli.report import describe_feeds

    if not serves_ahead(None):
        raise CommandError("this database has no served feeds yet (a schema before revision 0020): run ootd migrate")
    if args.feeds_action == "refresh":
        report = refresh_feeds(None, args.at, args.date, jobs=args.jobs)
    else:
        report = feeds_status(None)
    print(f"served feeds (inputs version {report.version}): {describe_feeds(report)}")


# --------------------------------------------------------------------- main --
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ootd",
        description="Outfit-of-the-day feeds at O(K) LLM cost, served from PostgreSQL.",
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("ootd")
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown (not installed)"
    parser.add_argument("--version", action="version", version=f"ootd {installed}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("db", help="the embedded database server (url, start, stop, status, replica)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("url", help="print the DSN (DATABASE_URL when set), starting the server if needed")
    actions.add_parser("start", help="start the server (idempotent); refill the pool cache after a crash")
    actions.add_parser("stop", help="stop the server, and its replica first")
    actions.add_parser("status", help="running or stopped (exit 3), and the replica's state if there is one")
    r = actions.add_parser("replica", help="a local streaming hot standby of the embedded server")
    r.add_argument(
        "replica_action",
        choices=["start", "stop", "url"],
        help="start (creating it with pg_basebackup if needed; idempotent), stop, or print its DSN",
    )
    c = actions.add_parser("citus", help="a local Citus cluster: coordinator + workers (db/citus.py)")
    c_actions = c.add_subparsers(dest="citus_action", required=True, metavar="CITUS_ACTION")
    c_up = c_actions.add_parser("up", help="create or start it (idempotent; builds Citus from $OOTD_CITUS_SOURCE)")
    c_up.add_argument("--workers", type=_positive_int, help="number of workers (default: as it is, or 2; never fewer)")
    c_actions.add_parser("down", help="stop every node")
    c_actions.add_parser("url", help="print the coordinator's DSN")
    c_actions.add_parser("status", help="each node running or stopped (exit 3 unless all run)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("migrate", help="install, upgrade or downgrade the schema (alembic upgrade/downgrade)")
    p.add_argument(
        "--revision",
        default="head",
        help="target revision (default: head); an older one than the database's downgrades",
    )
    p.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="let a downgrade drop tables or columns that hold rows (refused otherwise)",
    )
    p.add_argument(
        "--citus",
        action="store_true",
        help="a Citus coordinator: create the citus extension if missing, then distribute (detected when it exists)",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed", help="create synthetic users deterministically")
    p.add_argument(
        "--users",
        type=_positive_int,
        required=True,
        help="create users 1..N (at most 10,000,000; committed 100,000 at a time)",
    )
    p.add_argument("--seed", type=_int, default=42, help="random seed, >= 0 (default: 42)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser(
        "user",
        help="create a user, or update only the options given",
        description="Create a user (--city required) or update one: only the options given "
        "change; --dna and --rules set the keys they name and keep the others.",
    )
    p.add_argument("id", type=_positive_int)
    p.add_argument("--city", help="a city in ootd.cities, any case, e.g. torrance (required for a new user)")
    p.add_argument("--timezone", help="IANA zone name (default: the city's)")
    p.add_argument("--dna", type=_json_object, help="style_dna keys to set, as a JSON object")
    p.add_argument("--rules", type=_json_object, help="style_rules keys to set, as a JSON object")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("city", help="add a city users may live in")
    city = p.add_subparsers(dest="city_action", required=True, metavar="ACTION")
    p = city.add_parser("add", help="add a city (validated: IANA time zone, coordinates)")
    p.add_argument("name", help="the city's name, e.g. Torrance")
    p.add_argument("--timezone", required=True, help="IANA zone name, e.g. America/Los_Angeles")
    p.add_argument("--lat", type=float, required=True, help="latitude, -90..90")
    p.add_argument("--lon", type=float, required=True, help="longitude, -180..180")
    p.add_argument("--country", default="ZZ", help="ISO 3166 code, e.g. US (default: ZZ, unknown)")
    p.add_argument(
        "--population-k",
        type=_positive_int,
        default=100,
        help="metro population in thousands; weights seeded users (default: 100)",
    )
    p.set_defaults(func=cmd_city)

    p = sub.add_parser("nightly", help="generate today's pools: one LLM call per style cluster")
    p.add_argument("--date", type=_date, help="pool date, YYYY-MM-DD (default: today, UTC)")
    p.add_argument(
        "--llm",
        choices=["offline", "openai"],
        help="provider (default: openai when OPENAI_API_KEY is set, else offline)",
    )
    p.add_argument("--concurrency", type=_positive_int, default=4, help="requests in flight (default: 4)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per LLM request (default: 60)")
    p.add_argument("--no-wait", action="store_true", help="exit instead of waiting for a concurrent run")
    p.add_argument(
        "--force", action="store_true", help="generate a date more than one day after the database's current date"
    )
    p.set_defaults(func=cmd_nightly)

    p = sub.add_parser("summary", help="print the population summary")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="migrate, seed and show what ootd does")
    p.add_argument("--users", type=_positive_int, default=10_000)
    p.add_argument("--seed", type=_int, default=42)
    p.add_argument("--date", type=_date, help="the day to run the nightly for and show feeds of (default: today, UTC)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve the HTTP API with gunicorn (SIGTERM: graceful shutdown)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default: 2)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=4,
        help="threads per worker, each with a pooled connection (default: 4; 1 = sync workers)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "evaluate",
        help="measure the illusion of 1:1 personalization; store one row in ootd.evaluations",
        description="Sample users deterministically, read their feeds at local times and measure them "
        "against a 1:1 oracle in the database (docs/evaluation.md); the run is stored in ootd.evaluations.",
    )
    p.add_argument("--date", type=_date, help="pool date, YYYY-MM-DD (default: the latest pool date)")
    p.add_argument("--users", type=_positive_int, default=600, help="users to sample, 1..100000 (default: 600)")
    p.add_argument(
        "--at-times",
        default="09:00,15:00,21:00",
        help="local times on that date, comma-separated (default: 09:00,15:00,21:00)",
    )
    p.add_argument("--limit", type=_positive_int, default=5, help="the second k measured, 1..20 (default: 5)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument(
        "--sweep",
        action="store_true",
        help="measure clusterings by archetype, archetype x weather and x taste half against their LLM calls "
        "(no LLM call)",
    )
    runs.add_argument(
        "--by-variant",
        nargs="?",
        const=True,
        metavar="EXPERIMENT",
        help="measure each variant of an A/B experiment (default: the running one) on the same users and "
        "local times, as if every user were in it (no LLM call, nothing served changes)",
    )
    runs.add_argument(
        "--online",
        action="store_true",
        help="simulate --days N days of --users seeded users with a hidden truth in scratch databases (one per "
        "arm: upper_bound, pool_ceiling, served (one per variant of a running experiment), own_pool, floor), likes "
        "through ootd.like; store the run here",
    )
    p.add_argument("--days", type=_positive_int, help="--online: simulated days, 1..365")
    p.add_argument("--seed", type=_int, default=42, help="--online: the seed of users, truths and draws (default: 42)")
    p.add_argument("--start", type=_date, help="--online: the first simulated day (default: 2026-12-08)")
    p.add_argument(
        "--arms",
        default="upper_bound,pool_ceiling,served,own_pool,floor",
        help="--online: arms, comma-separated (the upper bound is always run; default: all five)",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=2,
        help="--online: arms simulated at once, each in its own scratch database (default: 2, the cores of the "
        "reference machine)",
    )
    p.add_argument("--plot", metavar="PATH", help="--online: the PNG to write (default: evaluation-<id>.png here)")
    p.add_argument(
        "--statement-timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="cancel the run (nothing stored) after this many seconds (default: 900; 0 = no timeout); a run "
        "reads at most 300,000 feeds (users x local times)",
    )
    p.add_argument("--json", action="store_true", help="print the stored metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "experiment",
        help="A/B experiments on the scoring weights (start, shares, end, list, results)",
        description="A/B variants of ootd.scoring_weights, thin over the SQL functions of "
        "db/sql/07_experiments.sql: one experiment runs at a time and covers every user; each change is "
        "logged in ootd.experiment_changes.",
    )
    exp = p.add_subparsers(dest="experiment_action", required=True, metavar="ACTION")
    e = exp.add_parser("start", help="start an experiment (ootd.start_experiment)")
    e.add_argument("name", help="the experiment's name: lowercase letters, digits, _ (e.g. cosine_up)")
    e.add_argument(
        "variants",
        type=_json_object,
        metavar="VARIANTS_JSON",
        help='{"control": {"share": 0.5}, "more_cosine": {"share": 0.5, "weights": {"cosine": 1.5}}}; '
        "shares add up to 1, the control takes no weights",
    )
    e.add_argument("--control", default="control", help="the control variant's name (default: control)")
    e = exp.add_parser("shares", help="change a running experiment's shares (ootd.set_experiment_shares)")
    e.add_argument("name", help="the running experiment")
    e.add_argument(
        "shares",
        type=_json_object,
        metavar="SHARES_JSON",
        help='{"variant": share, ...}; variants left out keep theirs, the result adds up to 1',
    )
    e = exp.add_parser("end", help="end a running experiment: every user is served the weights in force")
    e.add_argument("name", help="the running experiment")
    exp.add_parser("list", help="every experiment, its state and variants")
    e = exp.add_parser("results", help="likes per variant with 95%% CIs vs control (ootd.experiment_results)")
    e.add_argument("name", nargs="?", help="the experiment (default: the running one, else the latest started)")
    e.add_argument(
        "--min-days",
        metavar="DAYS",
        help="exposure below which only counts are shown, rates being not yet meaningful (default: the "
        "setting ootd.experiment_min_days, else 1 day)",
    )
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser(
        "feeds",
        help="the served feeds: every user's feed computed ahead (refresh, status)",
        description="ootd.feed serves each user's feed computed ahead while its inputs are unchanged, and ranks "
        "live otherwise. The nightly computes them; a change of weights, experiments or vocabulary makes every "
        "one stale: `ootd feeds refresh` computes them again (docs/serving.md).",
    )
    feeds = p.add_subparsers(dest="feeds_action", required=True)
    f = feeds.add_parser("refresh", help="compute every user's served feed again (ootd.refresh_feeds)")
    f.add_argument("--at", type=_instant, help="the instant whose local dates to compute (default: now)")
    f.add_argument("--date", type=_date, help="also this local date (e.g. the nightly's pool date)")
    f.add_argument("--jobs", type=_positive_int, default=2, help="sessions computing them (default: 2)")
    feeds.add_parser("status", help="how many served rows are current, and how many stale")
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("feed", help="print one user's feed (ootd.feed), no token needed")
    p.add_argument("user", type=_positive_int, help="the user's id")
    p.add_argument("--at", type=_instant, help="the instant, ISO 8601 (default: now; no offset: UTC)")
    p.add_argument("--limit", type=_int, default=3, help="items, 1..20 (default: 3)")
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser(
        "token",
        help="print a bearer token for one user (HS256, OOTD_API_SECRET), or revoke a user's tokens",
        description="ootd token ID [--ttl SECONDS] prints a token for user ID; ootd token revoke ID makes the "
        "API refuse every token of user ID minted so far (at once, in every worker).",
    )
    p.add_argument(
        "id",
        type=_token_target,
        metavar="ID|revoke",
        help="the user id the token names (the user must exist), or revoke",
    )
    p.add_argument("user", type=_positive_int, nargs="?", metavar="USER", help="with revoke: whose tokens to revoke")
    p.add_argument(
        "--ttl",
        type=_positive_int,
        help="seconds until it expires (default: 86400; at most OOTD_TOKEN_MAX_TTL_S, default 2592000 = 30 days)",
    )
    p.set_defaults(func=cmd_token, token_parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from db.connect import DatabaseError
    from db.server import ServerError

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except (CommandError, DatabaseError, ServerError, ValueError) as exc:
        if os.environ.get("OOTD_DEBUG"):
            raise
        print(f"ootd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ootd: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
