"""A Core statement compiled once and run on asyncpg's own connection: the create's hot path.

SQLAlchemy's execution of a statement costs more CPU than asyncpg's own work: the statement's
cache key is walked at every call (for the create's large CTE statement that alone was ~7 %
of the request), then parameters are processed, the result wrapped, and the call crosses a
greenlet. ``DriverStatement`` does the compiling once and keeps what is left per call:
fill the named parameters in the compiled order, apply each type's bind processor (the
engine's own, so JSON is written by orjson), and call ``fetchrow`` on the driver connection
under the pooled SQLAlchemy connection. asyncpg prepares the text once per connection (its
statement cache) as SQLAlchemy would.

What stays SQLAlchemy's: the statement itself (built as Core, in its repository), the pool
and its checkout checks (core/db/session.py), the dialect's type codecs on the connection
(JSON columns come back decoded by orjson). What changes: errors are asyncpg's own, not
``DBAPIError`` (``sqlstate_of`` reads either; core/db/faults.py maps both to 503 when the
database is unreachable). PostgreSQL only; SQLite keeps ordinary execution.

ARCHITECTURE.md, "How SQL is written": used only where a benchmark shows the gain
(bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg.exceptions as pg  # type: ignore[import-untyped]
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """``sql``: the text asyncpg runs; ``names``/``processors``: its ``$n`` parameters."""

    compiled: sa.engine.Compiled
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(cls, statement: sa.ClauseElement, dialect: Dialect) -> DriverStatement:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
        binds = compiled.binds  # type: ignore[attr-defined]
        processors = tuple(
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        return cls(compiled, compiled.string, names, processors)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional values for ``params`` (the statement's own bound values included)."""
        values = self.compiled.construct_params(params) or {}
        return [
            values[name] if process is None else process(values[name])
            for name, process in zip(self.names, self.processors, strict=True)
        ]

    async def fetchrow(self, connection: AsyncConnection, params: Mapping[str, Any]) -> Any:
        """The first row (an ``asyncpg.Record``) or None.

        A connection that fails under the statement (the server closed it) is invalidated,
        so the pool discards it as SQLAlchemy's own execution would have, and
        ``ConnectionLost`` says the statement may be retried on another."""
        arguments = self.arguments(params)
        raw = await connection.get_raw_connection()
        try:
            return await raw.driver_connection.fetchrow(self.sql, *arguments)  # type: ignore[union-attr]
        except (pg.PostgresConnectionError, pg.InterfaceError, OSError) as exc:
            await connection.invalidate(exc)
            raise ConnectionLost("the database connection failed under the statement") from exc


class ConnectionLost(sa_exc.DisconnectionError):
    """A driver connection failed under a ``DriverStatement``; it has been invalidated.
    (A ``DisconnectionError``: core/db/faults.py answers it 503.)"""


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, raised directly or wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None
