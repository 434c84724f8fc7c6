"""Async Alembic environment: the only way the schema changes."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from allyapi.core.db.models import UTCDateTime
from allyapi.core.db.session import make_engine
from allyapi.core.settings import load_settings
from allyapi.tables import metadata

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url or load_settings().effective_database_url


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones: migrations must not import the app."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if isinstance(obj, sa.JSON):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables
        literal_binds=connection is None,
    )


def run_offline() -> None:
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode changes a SQLite table by copying it and dropping the original; with
        # foreign keys on, that DROP deletes the rows first and fires every ON DELETE of the
        # tables referring to it (SET NULL, CASCADE): data lost. Off for the migration (this
        # PRAGMA must run before the first write opens a transaction), checked afterwards.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"a migration broke {len(broken)} foreign key(s)")


async def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
        return
    engine = make_engine(_url())
    try:
        async with engine.connect() as async_connection:
            await async_connection.run_sync(_run_sync)
            await async_connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
