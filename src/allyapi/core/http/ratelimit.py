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

A route marked ``@counted_by_its_statement`` (the create of a contact request) counts its own
write on PostgreSQL: the upsert is the first CTE of the route's one statement, which writes
nothing else when the count is over the limit (one round trip and one pooled connection fewer
on the hot path). The dependency then leaves a ``PendingWrite`` in the request's state, and the
count is still taken exactly once, before anything else is decided:

- by the statement, which hands its count to ``PendingWrite.counted`` (429 when over);
- by ``PendingWrite.settle`` before the route's other paths write anything (a statement that
  rolled back took no count);
- by ``RateLimitHeaders`` when a response starts with the count still pending (a 403 or 422
  decided before the route ran): over the limit, that response is replaced by the 429, so the
  refusal order is the same as when the dependency counts;
- by ``RateLimitHeaders`` again if the route failed without answering (the count is kept).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

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
from allyapi.core.http.errors import TooManyRequests, error_response
from allyapi.core.settings import Settings

WINDOW_SECONDS = 60
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET"})
STATE_KEY = "rate_limit_headers"
PENDING_KEY = "rate_limit_pending"  # a PendingWrite: the route's statement counts the write
COUNTED_BY_STATEMENT = "__allyapi_counted_by_its_statement__"
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
    "RETURNING count, window_start, {now} AS now"
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
                await sweep_if_new(connection, database.url, count, window)
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


async def sweep_if_new(
    connection: AsyncConnection, database_url: str, count: int, window: int
) -> None:
    """After a count: the first new bucket this process sees in a window sweeps old ones."""
    if count == 1 and SWEPT_WINDOWS.get(database_url, 0) < window:
        SWEPT_WINDOWS[database_url] = window
        await connection.execute(_SWEEP, {"window": window - WINDOW_SECONDS})


def counting_cte() -> sa.CTE:
    """PostgreSQL: the write count (the very upsert above) as the first CTE of a route's one
    statement, named ``counted``, with ``count``, ``window_start`` and ``now``; its
    parameters are ``PendingWrite.params``. The statement gates its writes on
    ``within_limit``."""
    upsert = text(_INCREMENT.format(now=_NOW["postgresql"], width=WINDOW_SECONDS))
    columns = upsert.columns(
        sa.column("count", sa.Integer()),
        sa.column("window_start", sa.BigInteger()),
        sa.column("now", sa.BigInteger()),
    )
    return columns.cte("counted")


def within_limit(counted: sa.CTE) -> sa.Exists:
    """The gate on every other write of the statement: the count is within ``rate_limit``."""
    limit = sa.bindparam("rate_limit", type_=sa.Integer())
    return sa.exists(sa.select(1).select_from(counted).where(counted.c.count <= limit))


@dataclass
class PendingWrite:
    """A write whose count its route's statement takes (the module's docstring).

    ``params`` go into that statement; ``counted`` takes the count it returned; ``settle``
    counts now on any other path. Either way the count happens once (``done``)."""

    database: Database
    key: str
    limit: int
    state: dict[str, Any]  # the request's state: the headers go there
    done: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return {"key": self.key, "policy": "writes", "rate_limit": self.limit}

    async def counted(self, connection: AsyncConnection, count: int, window: int, now: int) -> None:
        """The statement counted: its headers, the sweep, and 429 when over the limit."""
        self.done = True
        await sweep_if_new(connection, self.database.url, count, window)
        _apply(self.state, self.limit, count, max(window + WINDOW_SECONDS - now, 1))

    async def settle(self) -> None:
        """Count now, unless counted already (429 when over the limit)."""
        if self.done:
            return
        self.done = True
        count, reset_in = await count_request(self.database, self.key, "writes")
        _apply(self.state, self.limit, count, reset_in)


def pending_write(request: Request) -> PendingWrite | None:
    """The request's write count, when its route's statement is to take it."""
    pending: PendingWrite | None = request.scope.get("state", {}).get(PENDING_KEY)
    return pending


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def counted_by_its_statement(endpoint: Endpoint) -> Endpoint:
    """Marks a route whose service counts the write in its own statement on PostgreSQL,
    taking ``pending_write(request)``."""
    setattr(endpoint, COUNTED_BY_STATEMENT, True)
    return endpoint


def _counted_by_statement(request: Request, database: Database) -> bool:
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    return database.dialect == "postgresql" and getattr(endpoint, COUNTED_BY_STATEMENT, False)


def _apply(state: dict[str, Any], limit: int, count: int, reset_in: int) -> None:
    headers = headers_for("writes", limit, count, reset_in)
    if count > limit:
        raise _refusal("writes", limit, reset_in, headers)
    state[STATE_KEY] = headers


def _refusal(policy: str, limit: int, reset_in: int, headers: dict[str, str]) -> TooManyRequests:
    error = TooManyRequests(
        f"at most {limit} {policy} per minute; retry after {reset_in} s", retry_after=reset_in
    )
    error.headers.update(headers)
    return error


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
    elif _counted_by_statement(request, database):
        state = request.scope.setdefault("state", {})
        state[PENDING_KEY] = PendingWrite(database, key, limit, state)
        return caller
    else:
        count, reset_in = await count_request(database, key, policy)
    headers = headers_for(policy, limit, count, reset_in)
    if count > limit:
        raise _refusal(policy, limit, reset_in, headers)
    setattr(request.state, STATE_KEY, headers)
    return caller


class RateLimitHeaders:
    """Puts the dependency's headers on the response, whatever the route returns, and takes a
    write count still pending when the response starts (the module's docstring).

    (A dependency's injected ``Response`` is dropped when a route returns a ``Response``.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS | READ_METHODS:
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_with_headers(message: Message) -> None:
            nonlocal replaced
            if replaced:  # the 429 (or 503) went instead: the route's answer is dropped
                return
            pending = scope.get("state", {}).get(PENDING_KEY)
            if message["type"] == "http.response.start" and pending and not pending.done:
                try:
                    await pending.settle()
                except Exception as exc:  # over the limit, or the database failed
                    replaced = True
                    await error_response(exc)(scope, receive, send)
                    return
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

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            pending = scope.get("state", {}).get(PENDING_KEY)
            if pending is not None and not pending.done:  # failed before answering
                with contextlib.suppress(Exception):
                    await pending.settle()
