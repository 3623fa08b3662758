"""Alembic environment: one transaction per upgrade, raw SQL revisions.

The URL is, in order: `-x url=...`, the config's `sqlalchemy.url` (set by
`ootd migrate` and the tests), `DATABASE_URL`, else the embedded default.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from db.connect import sqlalchemy_url

config = context.config


def _url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    return sqlalchemy_url(x_url or config.get_main_option("sqlalchemy.url") or None)


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
