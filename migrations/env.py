"""Alembic environment: one transaction per upgrade, raw SQL revisions.

The URL is, in order: `-x url=...`, the config's `sqlalchemy.url` (set by
`ootd migrate` and the tests), `DATABASE_URL`, else the embedded default.

Downgrades are guarded (migrations/guard.py): a downgrade that would drop
rows, or non-NULL column values, that re-upgrading would not put back
refuses, lists them and changes nothing, unless `-x allow-data-loss=true`
(or `ootd migrate --allow-data-loss`, via Config.attributes).  The guard
raises after the last step, so the whole run must stay one transaction
(transactional_ddl, not transaction_per_migration).

One migration of a database at a time (migrations/lock.py): before its
transaction begins, the connection takes a session advisory lock, so a second
`alembic upgrade` (or `ootd migrate`) waits, then reads the first's committed
alembic_version and finds nothing to do.  Closing the connection releases it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from db.connect import sqlalchemy_url
from migrations.guard import CONFIG_ATTRIBUTE, X_ARGUMENT, DowngradeGuard, parse_allow
from migrations.lock import MIGRATIONS, release_lock, wait_for_lock

config = context.config


def _url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    return sqlalchemy_url(x_url or config.get_main_option("sqlalchemy.url") or None)


def _allow_data_loss() -> bool:
    x_args = context.get_x_argument(as_dictionary=True)
    if X_ARGUMENT in x_args:
        return parse_allow(x_args[X_ARGUMENT])
    return parse_allow(config.attributes.get(CONFIG_ATTRIBUTE))


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    allow_data_loss = _allow_data_loss()
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:

        def execute(statement: str, params: dict) -> list:
            return connection.exec_driver_sql(statement, params).fetchall()

        wait_for_lock(execute, MIGRATIONS, "alembic")
        connection.commit()  # the lock outlives this transaction: the migration's own begins after the wait
        context.configure(connection=connection, transactional_ddl=True)
        # The command's work function (`fn`: the steps to run) is wrapped so that
        # each downgrade step is measured before it runs (migrations/guard.py).
        work = context.get_context().opts.get("fn")
        if work is not None:
            context.configure(
                connection=connection, transactional_ddl=True, fn=DowngradeGuard(allow_data_loss).wrap(work)
            )
        with context.begin_transaction():
            context.run_migrations()
        release_lock(execute, MIGRATIONS)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
