"""``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite alike.

The primary key (or a unique constraint) decides who wins a race between processes: the
loser's insert does nothing (on PostgreSQL it first waits for the winner's transaction), and
the caller then reads the row that exists.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from allyapi.core.db.models import table_of

Insert = postgresql.Insert | sqlite.Insert


def dialect_insert(dialect: str, table: sa.Table) -> Insert:
    """An INSERT that knows ``ON CONFLICT`` (and ``excluded``) for ``dialect``."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def insert_ignoring_conflict(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any]
) -> bool:
    """Insert one row unless its key exists; True when this call inserted it."""
    dialect = session.get_bind().dialect.name
    statement = dialect_insert(dialect, table_of(model)).on_conflict_do_nothing()
    result = await session.execute(statement.values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]
