"""Which exceptions mean "the database is unreachable right now" (→ 503), not "a bug" (→ 500).

A restart, a failover, a network blip or an exhausted pool is a transient condition of the
service: the client should retry after a short pause, and nothing it sent was stored (the
transaction of its request did not commit). Those errors surface in several shapes:

- the driver's own: asyncpg ``ConnectionDoesNotExistError`` and the other
  ``PostgresConnectionError``\\s, ``CannotConnectNowError`` ("the database system is starting
  up"), ``AdminShutdownError``/``CrashShutdownError`` (a backend terminated under us),
  ``TooManyConnectionsError``; asyncpg's ``InterfaceError`` for a closed connection;
- SQLAlchemy's wrappers: ``OperationalError``/``InterfaceError``, any ``DBAPIError`` whose
  ``connection_invalidated`` is set, and the pool's ``TimeoutError`` (no connection free in
  ``pool_timeout`` seconds);
- plain ``OSError`` (connection refused or reset; ``TimeoutError`` is one) raised by a connect
  attempt, which SQLAlchemy does not wrap.

PostgreSQL's transaction-rollback errors (SQLSTATE class 40: a deadlock the server broke by
aborting this transaction, a serialization failure) are transient in the same sense: the
transaction was rolled back whole, and the same request can simply be sent again. The
contact-request lock order makes deadlocks rare (contact_requests/lifecycle.py); this is the
net under it.

SQLite's ``database is locked`` is an ``OperationalError`` too; it is transient as well, and a
503 with ``Retry-After`` is the honest answer if a write ever waited past the busy timeout.
Constraint violations (``IntegrityError``) and programming errors stay 500: retrying them
cannot help.
"""

from __future__ import annotations

import asyncpg.exceptions as pg  # type: ignore[import-untyped]
import sqlalchemy.exc as sa_exc

# Seconds a client should wait before retrying: long enough for a fast restart or failover.
RETRY_AFTER_SECONDS = 2

_DRIVER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,
    pg.CannotConnectNowError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.TooManyConnectionsError,
    pg.InterfaceError,
    OSError,
)

# The exception classes an app-level handler must see (MRO lookup): everything a connection
# fault can be raised as. ``unavailable`` decides per instance.
HANDLED: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.DisconnectionError,  # core/db/driver.py's ConnectionLost: not a DBAPIError
    sa_exc.TimeoutError,
    pg.PostgresError,
    pg.InterfaceError,
    OSError,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything behind it: SQLAlchemy's ``orig`` (the adapted driver
    error), whose ``__cause__`` is asyncpg's own, and every cause or context. Bounded, as
    chains can loop."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        for nxt in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException) and nxt not in seen:
                pending.append(nxt)
    return seen


# SQLSTATEs of a statement that stopped waiting for a lock: ``lock_timeout`` expired, or the
# deadlock detector chose it. Inside a savepoint both can be rolled back and tried again.
_GAVE_UP_WAITING = frozenset({"55P03", "40P01"})


def gave_up_waiting(exc: BaseException) -> bool:
    """True when ``exc`` is a lock wait that was given up (lock timeout or deadlock)."""
    return any(getattr(item, "sqlstate", None) in _GAVE_UP_WAITING for item in _chain(exc))


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached now (see the module doc)."""
    for item in _chain(exc):
        if isinstance(item, sa_exc.IntegrityError):
            return False
        if isinstance(item, sa_exc.TimeoutError | sa_exc.OperationalError):
            return True
        if isinstance(item, sa_exc.InterfaceError | sa_exc.DisconnectionError):
            return True
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, (*_DRIVER_CONNECTION_ERRORS, pg.TransactionRollbackError)):
            return True
    return False
