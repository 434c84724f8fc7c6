"""``Idempotency-Key`` for creating POSTs, shared by every process through the database
(docs/api-conventions.md).

How a create uses it (in the same transaction as the create itself)::

    replay = await Idempotency(session).claim(scope)
    if replay is not None:
        return <the resource replay.resource_id, re-read>, replay.status_code
    resource = <create>
    await Idempotency(session).remember(scope, resource.id, 201)

(or, when the create chooses its id first, ``claim(scope, resource=(id, 201))`` and no
``remember``: one statement instead of three, on the contact-request hot path.)

``claim`` inserts the key with ``ON CONFLICT DO UPDATE ... WHERE`` the stored key has expired.
The primary key serialises racing processes: on PostgreSQL a second insert of the same key
waits for the first transaction, then finds it unexpired, changes nothing and reads the
committed row (a replay); if the first rolled back (the create failed), the second insert
succeeds and creates. So only successful creates are remembered:
a 409 or a 429 is not replayed, and retrying after it tries again (the client's intent).

Same key + same body (sha256 of the canonical JSON of the *validated* body) → the same status
and the resource re-read now (so a replay shows its current state, never a second row); same
key + another body or another operation → 422. Keys live 24 h (``expires_at``); an expired key
is forgotten and may be used again; the purge job deletes old rows.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Header, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from allyapi.core.auth.pseudonym import Subject, subject_ref
from allyapi.core.db.models import ORG_ID_MAX, table_of, utc_column, utcnow
from allyapi.core.db.upsert import dialect_insert
from allyapi.core.http.errors import Conflict, InvalidInput

KEY_TTL = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x20-\x7e]+$",
        description=(
            "Optional; send one with every create you may retry. Any printable ASCII string "
            "up to 200 characters (a UUID is ideal). The same key with the same body within "
            "24 h replays the first response (`Idempotent-Replayed: true`, the resource as it "
            "is now) without creating anything; with another body it is a 422. Without a "
            "key the create is accepted, and a retry creates again (or meets the route's own "
            "409). An empty key is a 422."
        ),
    ),
]


class IdempotencyKey(SQLModel, table=True):
    """One key of one caller.

    ``caller_ref`` is subject_ref(key, "idem", caller): not joinable with requester_ref, and
    bound to the caller's issuer (the same ``sub`` at another issuer has other keys).
    The response is replayed by re-reading ``resource_id``, so no plaintext is kept here.
    """

    __tablename__ = "idempotency_keys"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    caller_ref: str = Field(max_length=64, primary_key=True)
    key: str = Field(max_length=200, primary_key=True)
    operation: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    # Indexed: erasing the resource deletes its key (no link survives an erasure).
    resource_id: uuid.UUID | None = Field(default=None, index=True)
    status_code: int | None = Field(default=None)
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column(index=True)


def body_hash(body: BaseModel, key: bytes) -> str:
    """HMAC-SHA256 (pseudonym key) of the canonical JSON of a validated body.

    Keyed, not a bare sha256: the body holds a message and a contact detail, and an unkeyed
    hash in a database dump would let anyone confirm a guessed message.
    """
    return hmac.new(key, canonical_json(body.model_dump(mode="json")), hashlib.sha256).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 as is: byte for byte what the standard library writes
    with ``sort_keys=True, separators=(",", ":"), ensure_ascii=False`` for validated bodies
    (strings, bounded integers, booleans, nulls, lists, objects), so hashes stored before
    stay comparable; orjson, because it is on the create's hot path."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class IdempotencyScope:
    """Which key of which caller for which operation, and the body it came with."""

    org_id: str
    caller_ref: str
    key: str
    operation: str
    request_hash: str

    def __repr__(self) -> str:
        return f"IdempotencyScope(org={self.org_id!r}, operation={self.operation!r})"


T = TypeVar("T")


@dataclass(frozen=True)
class Made(Generic[T]):
    """What a create answered, and whether it replayed an earlier request with the same key."""

    value: T
    replayed: bool = False


def mark_replay(response: Response, replayed: bool) -> None:
    """Every replay says so (``Idempotent-Replayed: true``), on every creating route."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"


def scope_of(
    org: str,
    person: Subject,
    key: bytes,
    idempotency_key: str | None,
    operation: str,
    body: BaseModel,
) -> IdempotencyScope | None:
    """The caller's Idempotency-Key for one create, or None without one. The caller is named
    by their own keyed reference (purpose ``idem``), which joins to nothing else they own."""
    if idempotency_key is None:
        return None
    caller_ref = subject_ref(key, "idem", person)
    return IdempotencyScope(org, caller_ref, idempotency_key, operation, body_hash(body, key))


@dataclass(frozen=True)
class Replay:
    resource_id: uuid.UUID
    status_code: int


class Idempotency:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _this_key(self, scope: IdempotencyScope) -> sa.ColumnElement[bool]:
        return sa.and_(
            col(IdempotencyKey.org_id) == scope.org_id,
            col(IdempotencyKey.caller_ref) == scope.caller_ref,
            col(IdempotencyKey.key) == scope.key,
        )

    async def claim(
        self,
        scope: IdempotencyScope,
        now: datetime | None = None,
        *,
        resource: tuple[uuid.UUID, int] | None = None,
    ) -> Replay | None:
        """None: the key is new (or had expired) and is now ours; else what to replay.

        ``resource``: the id and status the create *will* answer, stored with the claim so no
        ``remember`` is needed (the create picks its id before claiming). The claim commits
        or rolls back with the create either way.

        One statement: insert the key, or take over an expired one (``ON CONFLICT DO UPDATE
        ... WHERE expires_at <= now``); a row comes back only when the key is ours.
        """
        now = now or utcnow()
        resource_id, status_code = resource if resource is not None else (None, None)
        dialect = self.session.get_bind().dialect.name
        claimed = await self.session.execute(
            _claim_statement(dialect),
            {
                "org_id": scope.org_id,
                "caller_ref": scope.caller_ref,
                "key": scope.key,
                "operation": scope.operation,
                "request_hash": scope.request_hash,
                "resource_id": resource_id,
                "status_code": status_code,
                "created_at": now,
                "expires_at": now + KEY_TTL,
            },
        )
        if claimed.first() is not None:
            return None
        stored = (
            await self.session.execute(sa.select(IdempotencyKey).where(self._this_key(scope)))
        ).scalar_one()
        if stored.operation != scope.operation or stored.request_hash != scope.request_hash:
            raise InvalidInput(
                "this Idempotency-Key was already used with a different request",
                loc=("header", "Idempotency-Key"),
            )
        if stored.resource_id is None or stored.status_code is None:
            # Only reachable inside the transaction that claimed it: never across requests.
            raise Conflict("a request with this Idempotency-Key is still in progress")
        return Replay(stored.resource_id, stored.status_code)

    async def remember(
        self, scope: IdempotencyScope, resource_id: uuid.UUID, status_code: int
    ) -> None:
        await self.session.execute(
            sa.update(IdempotencyKey)
            .where(self._this_key(scope))
            .values(resource_id=resource_id, status_code=status_code)
            .execution_options(synchronize_session=False)
        )


_TAKEN_OVER = (
    "operation",
    "request_hash",
    "resource_id",
    "status_code",
    "created_at",
    "expires_at",
)


def claim_upsert(dialect: str, prefix: str = "", where: Any = None) -> Any:
    """The claim: insert the key, or take over one that has expired; it returns the key only
    when this statement claimed it. Its parameters are the columns' names after ``prefix``
    (the create's single statement binds them as ``k_*``, beside other tables' values);
    ``where``: a condition the claim is made under (the create's write count)."""
    keys = table_of(IdempotencyKey)
    values = {
        column.name: sa.bindparam(prefix + column.name, type_=column.type) for column in keys.c
    }
    insert = dialect_insert(dialect, keys)
    if where is None:
        insert = insert.values(values)
    else:
        insert = insert.from_select(list(values), sa.select(*values.values()).where(where))
    return insert.on_conflict_do_update(
        index_elements=[keys.c.org_id, keys.c.caller_ref, keys.c.key],
        set_={name: insert.excluded[name] for name in _TAKEN_OVER},
        where=keys.c.expires_at <= insert.excluded.created_at,
    ).returning(keys.c.key)


@lru_cache(maxsize=4)
def _claim_statement(dialect: str) -> Any:
    """Built once per dialect; every value is a bound parameter."""
    return claim_upsert(dialect)


async def delete_expired_keys(session: AsyncSession, *, now: datetime, batch_size: int) -> int:
    """Idempotency keys past ``expires_at`` (kept ≥ 24 h by the create endpoint)."""
    columns = (
        col(IdempotencyKey.org_id),
        col(IdempotencyKey.caller_ref),
        col(IdempotencyKey.key),
    )
    expired = col(IdempotencyKey.expires_at) <= now
    keys = (
        await session.execute(
            sa.select(*columns).where(expired).limit(batch_size).with_for_update(skip_locked=True)
        )
    ).all()
    if not keys:
        return 0
    result = await session.execute(
        sa.delete(IdempotencyKey).where(
            sa.tuple_(*columns).in_([tuple(row) for row in keys]), expired
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
