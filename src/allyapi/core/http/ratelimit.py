"""Per-caller rate limits, counted in the database so every process shares them.

Two policies, each a fixed one-minute window per caller: ``writes`` (POST/PUT/PATCH/DELETE
under /v1, ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE) and ``reads`` (GET under /v1,
ALLYAPI_RATE_LIMIT_READS_PER_MINUTE): reads are limited too, because polling a read is how a
side channel is watched (the suggestions' ranking, an aggregate read again and again) and how
a directory is scraped. Writes: one atomic upsert-increment per request (``INSERT ... ON CONFLICT DO
UPDATE ... RETURNING``, PostgreSQL and SQLite ≥ 3.35 alike), in autocommit so the count stands
even when the request itself fails or is refused, and no row lock is held while the request
runs. Reads: the same rows, counted in process and flushed in batches off the request path
(core/http/readcount.py, which states the bound it gives with several processes). Over the limit: 429 with ``Retry-After``. Every counted response carries the IETF draft
headers (draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "writes";q=120;w=60`` and
``RateLimit: "writes";r=<left>;t=<seconds>``.

The window is computed on the *database's* clock, in the statement itself: replicas whose
clocks disagree all count into the same window, and none can sweep away the others' current
windows (a replica 180 s ahead used to delete every current bucket as "old", so a caller
alternating between replicas was never limited).

The bucket key is subject_ref(pseudonym key, "rate", caller): a keyed hash of org, sub and
issuer, never the raw ``sub``, and not joinable with any other reference. Attempts count whatever their outcome
(403, 404, 422 included): a limit on attempts is what slows down probing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.security import Caller
from allyapi.core.auth.tokens import Principal
from allyapi.core.db.driver import ConnectionLost, DriverStatement
from allyapi.core.db.session import Database, is_sqlite
from allyapi.core.http.errors import TooManyRequests
from allyapi.core.settings import Settings

WINDOW_SECONDS = 60
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET"})
STATE_KEY = "rate_limit_headers"
Policy = Literal["writes", "reads"]

# The database's own "now" in whole Unix seconds, evaluated once per statement (an
# autocommit statement is its own transaction, so PostgreSQL's now() is the statement's).
_NOW = {
    "postgresql": "CAST(floor(extract(epoch FROM now())) AS BIGINT)",
    "sqlite": "CAST(strftime('%s', 'now') AS INTEGER)",
}
_INCREMENT = (
    "INSERT INTO rate_limit_buckets (key, policy, window_start, count) "
    "VALUES (:key, :policy, {now} / {width} * {width}, 1) "
    "ON CONFLICT (key, policy, window_start) DO UPDATE SET count = rate_limit_buckets.count + 1 "
    "RETURNING count, window_start, {now}"
)
# Old windows are useless: the first new bucket a process makes in a window sweeps them
# (indexed), once per process and window. (Once per caller was one more round trip on most
# creates: each requester writes rarely, so nearly every create opened a new bucket.)
_SWEEP = text("DELETE FROM rate_limit_buckets WHERE window_start < :window")
SWEPT_WINDOWS: dict[str, int] = {}  # database URL -> the last window this process swept in


@lru_cache(maxsize=4)
def increment_statement(database_url: str) -> sa.TextClause:
    now = _NOW["sqlite" if is_sqlite(database_url) else "postgresql"]
    return text(_INCREMENT.format(now=now, width=WINDOW_SECONDS))


@lru_cache(maxsize=4)
def driver_increment(dialect: Dialect) -> DriverStatement:
    """PostgreSQL: the upsert run on the driver's connection, the first statement of every
    write (core/db/driver.py)."""
    return DriverStatement.compile(
        text(_INCREMENT.format(now=_NOW["postgresql"], width=WINDOW_SECONDS)), dialect
    )


async def _increment(
    database: Database, connection: AsyncConnection, params: dict[str, str]
) -> Any:
    if database.dialect == "postgresql":
        return await driver_increment(connection.dialect).fetchrow(connection, params)
    return (await connection.execute(increment_statement(database.url), params)).one()


class RateLimitBucket(SQLModel, table=True):
    """Requests of one caller under one policy in one window (``window_start``: Unix seconds
    on the database's clock)."""

    __tablename__ = "rate_limit_buckets"

    key: str = Field(max_length=64, primary_key=True)
    policy: str = Field(max_length=16, primary_key=True)
    window_start: int = Field(
        primary_key=True,
        index=True,  # the sweep of old windows
        sa_type=sa.BigInteger,
        sa_column_kwargs={"autoincrement": False},
    )
    count: int = Field(default=0)


def headers_for(policy: Policy, limit: int, used: int, reset_in: int) -> dict[str, str]:
    remaining = max(limit - used, 0)
    return {
        "RateLimit-Policy": f'"{policy}";q={limit};w={WINDOW_SECONDS}',
        "RateLimit": f'"{policy}";r={remaining};t={reset_in}',
    }


async def count_request(database: Database, key: str, policy: Policy) -> tuple[int, int]:
    """Add one request to the caller's current window; (count so far, seconds to reset)."""
    count, window, now = await count_request_at(database, key, policy)
    return count, max(window + WINDOW_SECONDS - now, 1)


async def count_request_at(database: Database, key: str, policy: str) -> tuple[int, int, int]:
    """Add one request to the caller's current window; (count so far, the window's start,
    the database's now), both in Unix seconds on the database's clock.

    The upsert runs in autocommit: one atomic statement, one round trip, committed at once
    (not with the request, so refused and failed requests count too). Window and reset come
    from the database's clock, never this process's.
    """
    for attempt in range(2):
        try:
            async with database.autocommit.connect() as connection:
                row = await _increment(database, connection, {"key": key, "policy": policy})
                count, window, now = int(row[0]), int(row[1]), int(row[2])
                if count == 1 and SWEPT_WINDOWS.get(database.url, 0) < window:
                    SWEPT_WINDOWS[database.url] = window
                    await connection.execute(_SWEEP, {"window": window - WINDOW_SECONDS})
            return count, window, now
        except (DBAPIError, ConnectionLost) as exc:
            # The first statement of most requests: a connection the server closed a moment
            # ago can still look alive at checkout (its EOF not yet read, core/db/session.py).
            # Such a connection is invalidated; one more try gets a live one. At worst the
            # first try had counted already, and the caller is charged one request more.
            lost = isinstance(exc, ConnectionLost) or exc.connection_invalidated
            if attempt or not lost:
                raise
    raise AssertionError("unreachable")


def _policy(method: str, settings: Settings) -> tuple[Policy, int] | None:
    if method in WRITE_METHODS:
        return "writes", settings.rate_limit_writes_per_minute
    if method in READ_METHODS:
        return "reads", settings.rate_limit_reads_per_minute
    return None


async def caller_rate_limit(request: Request, caller: Caller) -> Principal:
    """Router-level dependency on /v1: counts every read and write of the caller."""
    settings: Settings = request.app.state.settings
    counted = _policy(request.method, settings)
    if counted is None:
        return caller
    policy, limit = counted
    key = subject_ref(settings.pseudonym_key_bytes, "rate", caller.subject)
    database: Database = request.app.state.database
    if policy == "reads":  # counted in process, flushed in batches (core/http/readcount.py)
        count, reset_in = await database.read_counter.count(key, policy)
    else:
        count, reset_in = await count_request(database, key, policy)
    headers = headers_for(policy, limit, count, reset_in)
    if count > limit:
        error = TooManyRequests(
            f"at most {limit} {policy} per minute; retry after {reset_in} s", retry_after=reset_in
        )
        error.headers.update(headers)
        raise error
    setattr(request.state, STATE_KEY, headers)
    return caller


class RateLimitHeaders:
    """Puts the dependency's headers on the response, whatever the route returns.

    (A dependency's injected ``Response`` is dropped when a route returns a ``Response``.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS | READ_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            headers = scope.get("state", {}).get(STATE_KEY)
            if message["type"] == "http.response.start" and headers:
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(
                        (name.lower().encode(), value.encode())
                        for name, value in headers.items()
                        if name.lower().encode() not in present
                    ),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
