"""Per-caller write rate limit, counted in the database so every process shares it (SPEC §5).

A fixed one-minute window per caller: one atomic upsert-increment per write request
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, PostgreSQL and SQLite ≥ 3.35 alike), in
autocommit so the count stands even when the request itself fails or is refused,
and no row lock is held while the request runs. Over the limit: 429 with ``Retry-After``.
Every counted response carries the IETF draft headers (draft-ietf-httpapi-ratelimit-headers):
``RateLimit-Policy: "writes";q=120;w=60`` and ``RateLimit: "writes";r=<left>;t=<seconds>``.

The bucket key is subject_ref(pseudonym key, "rate", caller): a keyed hash of org, sub and
issuer, never the raw ``sub``, and not joinable with any other reference. Attempts count whatever their outcome
(403, 404, 422 included): a limit on attempts is what slows down probing.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy import text
from sqlmodel import Field, SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allyapi.core.auth import Principal
from allyapi.core.database import Database
from allyapi.core.errors import TooManyRequests
from allyapi.core.pseudonym import subject_ref
from allyapi.core.security import Caller
from allyapi.core.settings import Settings

WINDOW_SECONDS = 60
POLICY = "writes"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATE_KEY = "rate_limit_headers"

_INCREMENT = text(
    "INSERT INTO rate_limit_buckets (key, window_start, count) VALUES (:key, :window, 1) "
    "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_buckets.count + 1 "
    "RETURNING count"
)
# Old windows are useless: the first write of a caller in a new window sweeps them (indexed).
_SWEEP = text("DELETE FROM rate_limit_buckets WHERE window_start < :window")


class RateLimitBucket(SQLModel, table=True):
    """Writes of one caller in one window (``window_start`` in Unix seconds)."""

    __tablename__ = "rate_limit_buckets"

    key: str = Field(max_length=64, primary_key=True)
    window_start: int = Field(
        primary_key=True,
        index=True,  # the sweep of old windows
        sa_type=sa.BigInteger,
        sa_column_kwargs={"autoincrement": False},
    )
    count: int = Field(default=0)


def headers_for(limit: int, used: int, reset_in: int) -> dict[str, str]:
    remaining = max(limit - used, 0)
    return {
        "RateLimit-Policy": f'"{POLICY}";q={limit};w={WINDOW_SECONDS}',
        "RateLimit": f'"{POLICY}";r={remaining};t={reset_in}',
    }


async def count_write(database: Database, key: str, now: float) -> tuple[int, int]:
    """Add one write to the caller's current window; (count so far, seconds to reset).

    The upsert runs in autocommit: one atomic statement, one round trip, committed at once
    (not with the request, so refused and failed requests count too).
    """
    window = int(now) // WINDOW_SECONDS * WINDOW_SECONDS
    async with database.autocommit.connect() as connection:
        count = int(
            (await connection.execute(_INCREMENT, {"key": key, "window": window})).scalar_one()
        )
        if count == 1:
            await connection.execute(_SWEEP, {"window": window - WINDOW_SECONDS})
    return count, max(window + WINDOW_SECONDS - int(now), 1)


async def write_rate_limit(request: Request, caller: Caller) -> Principal:
    """Router-level dependency on /v1: counts POST/PUT/PATCH/DELETE, lets reads through."""
    if request.method not in WRITE_METHODS:
        return caller
    settings: Settings = request.app.state.settings
    limit = settings.rate_limit_writes_per_minute
    key = subject_ref(settings.pseudonym_key_bytes, "rate", caller.subject)
    count, reset_in = await count_write(request.app.state.database, key, time.time())
    headers = headers_for(limit, count, reset_in)
    if count > limit:
        error = TooManyRequests(
            f"at most {limit} writes per minute; retry after {reset_in} s", retry_after=reset_in
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
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
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
