"""Contact-request SQL. Every query is scoped to the caller's org (docs/privacy.md, P8); erased
requests are invisible to every read (P7: "afterwards the request is 404 for everyone").

The load counters are changed only here, by conditional UPDATEs whose WHERE is the rule, so
capacity and the requester cap hold with many processes: the row lock taken by the UPDATE
serialises racing transactions and the loser's WHERE no longer matches (0 rows).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from allyapi.allies.listing_repository import ALLIES, listed_clause, missing_required_training
from allyapi.allies.models import Ally, AllyStatus
from allyapi.allies.repository import PUBLIC_PROFILE_COLUMNS
from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    ContactRequestKey,
    RequesterLoad,
    RequestStatus,
)
from allyapi.core.db.models import table_of
from allyapi.core.db.upsert import dialect_insert
from allyapi.resources.models import Resource

Keyset = tuple[datetime, uuid.UUID]
KEYS = table_of(ContactRequestKey)
LOADS = table_of(RequesterLoad)
REQUESTS = table_of(ContactRequest)
PUBLIC_PROFILE = PUBLIC_PROFILE_COLUMNS  # the columns a claim returns


class ContactRequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Requests -------------------------------------------------------------------------------

    async def get(
        self, org_id: str, request_id: uuid.UUID, *, for_update: bool = False
    ) -> ContactRequest | None:
        query = select(ContactRequest).where(
            ContactRequest.org_id == org_id,
            ContactRequest.id == request_id,
            col(ContactRequest.erased_at).is_(None),
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalars().first()

    async def hold_for_reading(self, org_id: str, request_id: uuid.UUID) -> ContactRequest | None:
        """The request again, read ``FOR SHARE`` (current values), or None once erased.

        An ally's read writes an access-log row. Holding the row until commit serialises
        that write with an erasure or a retention purge (both lock the row for update): the
        read either comes first, and its log row is destroyed with the rest, or comes after,
        and finds nothing (404) or no content. SQLite serialises every transaction anyway.
        """
        query = (
            select(ContactRequest)
            .where(
                ContactRequest.org_id == org_id,
                ContactRequest.id == request_id,
                col(ContactRequest.erased_at).is_(None),
            )
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(query)).scalars().first()

    async def page_of_requester(
        self, org_id: str, requester_ref: str, *, limit: int, before: Keyset | None
    ) -> Sequence[ContactRequest]:
        query = select(ContactRequest).where(
            ContactRequest.org_id == org_id,
            ContactRequest.requester_ref == requester_ref,
            col(ContactRequest.erased_at).is_(None),
        )
        return await self._newest_first(query, limit, before)

    async def page_of_ally(
        self,
        org_id: str,
        ally_id: uuid.UUID,
        *,
        status: str | None,
        limit: int,
        before: Keyset | None,
    ) -> Sequence[ContactRequest]:
        query = select(ContactRequest).where(
            ContactRequest.org_id == org_id,
            ContactRequest.ally_id == ally_id,
            col(ContactRequest.erased_at).is_(None),
        )
        if status is not None:
            query = query.where(ContactRequest.status == status)
        return await self._newest_first(query, limit, before)

    async def _newest_first(
        self, query: SelectOfScalar[ContactRequest], limit: int, before: Keyset | None
    ) -> Sequence[ContactRequest]:
        keys = (col(ContactRequest.created_at), col(ContactRequest.id))
        if before is not None:
            query = query.where(sa.tuple_(*keys) < before)
        query = query.order_by(keys[0].desc(), keys[1].desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def pending_of_ally(self, org_id: str, ally_id: uuid.UUID) -> Sequence[ContactRequest]:
        query = (
            select(ContactRequest)
            .where(
                ContactRequest.org_id == org_id,
                ContactRequest.ally_id == ally_id,
                ContactRequest.status == RequestStatus.pending,
            )
            .order_by(col(ContactRequest.created_at), col(ContactRequest.id))
            .with_for_update()
        )
        return (await self.session.execute(query)).scalars().all()

    def add(self, row: ContactRequest | ContactMessage | AccessLogEntry) -> None:
        self.session.add(row)

    # Data keys ------------------------------------------------------------------------------

    async def insert_key(self, org_id: str, request_id: uuid.UUID, key_sealed: str) -> None:
        await self.session.execute(
            KEYS.insert(), {"request_id": request_id, "org_id": org_id, "key_sealed": key_sealed}
        )

    async def sealed_key(self, request_id: uuid.UUID) -> str | None:
        query = sa.select(KEYS.c.key_sealed).where(KEYS.c.request_id == request_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    # Allies ---------------------------------------------------------------------------------

    async def ally_by_subject(self, org_id: str, subject_ref: str) -> Ally | None:
        query = select(Ally).where(Ally.org_id == org_id, Ally.subject_ref == subject_ref)
        return (await self.session.execute(query)).scalars().first()

    async def ally(self, org_id: str, ally_id: uuid.UUID) -> Ally | None:
        query = select(Ally).where(Ally.org_id == org_id, Ally.id == ally_id)
        return (await self.session.execute(query)).scalars().first()

    async def allies(self, org_id: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Ally]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        query = select(Ally).where(Ally.org_id == org_id, col(Ally.id).in_(wanted))
        return {ally.id: ally for ally in (await self.session.execute(query)).scalars()}

    async def is_reachable(self, org_id: str, ally_id: uuid.UUID, today: date) -> bool:
        """Active with current required training: listed, or listed but for ``accepting``."""
        query = sa.select(sa.literal(1)).where(
            col(Ally.org_id) == org_id,
            col(Ally.id) == ally_id,
            col(Ally.status) == AllyStatus.active,
            ~missing_required_training(today),
        )
        return (await self.session.execute(query)).first() is not None

    # Counters -------------------------------------------------------------------------------

    async def claim_ally_slot(
        self, org_id: str, ally_id: uuid.UUID, today: date
    ) -> dict[str, Any] | None:
        """One more open request for a listed ally with free capacity: the ally's public
        profile (one statement: ``UPDATE ... RETURNING``), or None if no slot was left.

        Waits for the ally's row when another transaction holds it (PostgreSQL), so a busy
        ally with room is never mistaken for a full one."""
        result = await self.session.execute(
            _ally_slot_statement(today), {"slot_org": org_id, "slot_ally": ally_id}
        )
        row = result.first()
        return None if row is None else dict(zip(PUBLIC_PROFILE, row, strict=True))

    async def lock_allies_in_order(
        self, org_id: str, ally_ids: Iterable[uuid.UUID], *, wait_ms: int
    ) -> None:
        """Lock these allies' rows in id order, waiting at most ``wait_ms`` for each.

        Re-matching needs several ally rows at once (the ally giving the request back and
        the candidates). Taking them in one order everywhere is what keeps two re-matches
        from deadlocking; the bounded wait is the net for the few paths that hold an ally's
        row before they get here (a pause). ``FOR NO KEY UPDATE`` is the lock the claim's
        UPDATE takes anyway, and it does not wait for a request being inserted for the ally
        (the foreign key's share lock). PostgreSQL only: SQLite serialises every writer
        (BEGIN IMMEDIATE), so there is nothing to wait for there.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        ids = sorted(set(ally_ids))
        await self.session.execute(
            sa.select(sa.func.set_config("lock_timeout", str(int(wait_ms)), True))
        )
        await self.session.execute(
            sa.select(col(Ally.id))
            .where(col(Ally.org_id) == org_id, col(Ally.id).in_(ids))
            .order_by(col(Ally.id))
            .with_for_update(key_share=True)
        )
        await self.session.execute(sa.text("SET LOCAL lock_timeout TO DEFAULT"))

    async def release_ally_slot(self, org_id: str, ally_id: uuid.UUID) -> None:
        load = col(Ally.open_requests)
        await self.session.execute(
            sa.update(Ally)
            .where(col(Ally.org_id) == org_id, col(Ally.id) == ally_id, load > 0)
            .values(open_requests=load - 1)
            .execution_options(synchronize_session=False)
        )

    async def claim_requester_slot(self, org_id: str, requester_ref: str, cap: int) -> bool:
        """One more open request for this requester unless ``cap`` are open: one upsert
        (``ON CONFLICT DO UPDATE ... WHERE open_requests < cap RETURNING``)."""
        dialect = self.session.get_bind().dialect.name
        result = await self.session.execute(
            _requester_slot_statement(dialect),
            {"org_id": org_id, "requester_ref": requester_ref, "cap": cap},
        )
        return result.first() is not None

    async def insert_request(self, values: dict[str, Any]) -> None:
        """A new request row, without building an ORM entity (the create hot path)."""
        await self.session.execute(REQUESTS.insert(), values)

    async def release_requester_slot(self, org_id: str, requester_ref: str) -> None:
        """One open request fewer for this requester. The row goes when none is left: a
        per-person row that says nothing would still say "this person once asked", and it
        would outlive an erasure. Its claim (an upsert) makes it again when needed."""
        this = (
            col(RequesterLoad.org_id) == org_id,
            col(RequesterLoad.requester_ref) == requester_ref,
        )
        load = col(RequesterLoad.open_requests)
        # Decrement first, then delete at zero: a DELETE ... WHERE open_requests <= 1 judged on
        # its snapshot would miss a row a concurrent release was bringing down to 1 (PostgreSQL
        # re-checks only rows it waited for), leaving a row at zero behind.
        left = await self.session.scalar(
            sa.update(RequesterLoad)
            .where(*this, load > 0)
            .values(open_requests=load - 1)
            .returning(load)
            .execution_options(synchronize_session=False)
        )
        if left == 0:
            await self.session.execute(
                sa.delete(RequesterLoad)
                .where(*this, load == 0)
                .execution_options(synchronize_session=False)
            )

    # Thread and access log ------------------------------------------------------------------

    async def count_messages(self, request_id: uuid.UUID) -> int:
        query = sa.select(sa.func.count()).where(col(ContactMessage.request_id) == request_id)
        return int((await self.session.execute(query)).scalar_one())

    async def page_of_messages(
        self, request_id: uuid.UUID, *, limit: int, after: Keyset | None
    ) -> Sequence[ContactMessage]:
        keys = (col(ContactMessage.created_at), col(ContactMessage.id))
        query = select(ContactMessage).where(ContactMessage.request_id == request_id)
        if after is not None:
            query = query.where(sa.tuple_(*keys) > after)
        query = query.order_by(*keys).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def page_of_access_log(
        self, request_id: uuid.UUID, *, limit: int, before: Keyset | None
    ) -> Sequence[AccessLogEntry]:
        keys = (col(AccessLogEntry.accessed_at), col(AccessLogEntry.id))
        query = select(AccessLogEntry).where(AccessLogEntry.request_id == request_id)
        if before is not None:
            query = query.where(sa.tuple_(*keys) < before)
        query = query.order_by(keys[0].desc(), keys[1].desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    # Resources ------------------------------------------------------------------------------

    async def existing_resource_ids(self, org_id: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        query = sa.select(col(Resource.id)).where(
            col(Resource.org_id) == org_id, col(Resource.id).in_(list(ids))
        )
        return set((await self.session.execute(query)).scalars())


# Statements of the create path, built once (per dialect, or per day for *listed*) with every
# value a bound parameter: no statement construction per request (bench/RESULTS.md).


@lru_cache(maxsize=8)
def _ally_slot_statement(today: date) -> Any:
    load = ALLIES.c.open_requests
    return (
        sa.update(ALLIES)
        .where(
            # Not named after columns: an UPDATE reserves those names for its SET values.
            ALLIES.c.org_id == sa.bindparam("slot_org", type_=sa.String()),
            ALLIES.c.id == sa.bindparam("slot_ally", type_=ALLIES.c.id.type),
            load < ALLIES.c.max_open_requests,
            listed_clause(today),
        )
        .values(open_requests=load + 1)
        .returning(*(ALLIES.c[name] for name in PUBLIC_PROFILE))
    )


@lru_cache(maxsize=4)
def _requester_slot_statement(dialect: str) -> Any:
    insert = dialect_insert(dialect, LOADS).values(
        org_id=sa.bindparam("org_id", type_=sa.String()),
        requester_ref=sa.bindparam("requester_ref", type_=sa.String()),
        open_requests=1,
    )
    return insert.on_conflict_do_update(
        index_elements=[LOADS.c.org_id, LOADS.c.requester_ref],
        set_={"open_requests": LOADS.c.open_requests + 1},
        where=LOADS.c.open_requests < sa.bindparam("cap", type_=sa.Integer()),
    ).returning(LOADS.c.open_requests)


# Time-driven work (jobs/contact_requests.py) -------------------------------------------------

# Dates kept after the content is gone are truncated to the day (P7, docs/privacy.md).
DATE_FIELDS = (
    "created_at",
    "updated_at",
    "expires_at",
    "accepted_at",
    "closed_at",
    "content_purge_at",
)
_DATE_COLUMNS = tuple(REQUESTS.c[name] for name in DATE_FIELDS)


def _expiry_due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(ContactRequest.status) == RequestStatus.pending,
        col(ContactRequest.expires_at) <= now,
    )


async def claim_expired(
    session: AsyncSession, now: datetime, batch_size: int
) -> Sequence[ContactRequest]:
    """Up to ``batch_size`` pending requests past their window, claimed for this transaction."""
    due = _expiry_due(now)
    ids = list(
        await session.scalars(
            sa.select(col(ContactRequest.id))
            .where(due)
            .order_by(col(ContactRequest.expires_at))
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    # Claim the rows with a guarded no-op write before reading them: on PostgreSQL the rows are
    # already locked; on SQLite this takes the write lock, so no request can accept or cancel
    # one of them between our read and our write (pysqlite starts no transaction for a SELECT).
    claimed = list(
        await session.scalars(
            sa.update(ContactRequest)
            .where(col(ContactRequest.id).in_(ids), due)
            .values(status=col(ContactRequest.status))
            .returning(col(ContactRequest.id))
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        return []
    result = await session.scalars(
        sa.select(ContactRequest)
        .where(col(ContactRequest.id).in_(claimed))
        .execution_options(populate_existing=True)
    )
    return result.all()


def _purge_due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(ContactRequest.content_purge_at) <= now,
        col(ContactRequest.content_purged_at).is_(None),
        col(ContactRequest.status).not_in([RequestStatus.pending, RequestStatus.accepted]),
    )


async def purge_candidates(
    session: AsyncSession, now: datetime, batch_size: int
) -> list[tuple[uuid.UUID, tuple[datetime | None, ...]]]:
    """(id, *DATE_FIELDS) of closed requests past ``content_purge_at``, locked, skipping
    rows another transaction holds."""
    result = await session.execute(
        sa.select(col(ContactRequest.id), *_DATE_COLUMNS)
        .where(_purge_due(now))
        .order_by(col(ContactRequest.content_purge_at))
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    return [(row[0], tuple(row[1:])) for row in result]


async def purge_content(
    session: AsyncSession,
    request_id: uuid.UUID,
    now: datetime,
    purged_on: datetime | None,
    days: dict[str, datetime | None],
) -> int:
    """The sealed content gone and the dates cut to the day, if the row is still due (1/0)."""
    result = await session.execute(
        sa.update(ContactRequest)
        .where(col(ContactRequest.id) == request_id, _purge_due(now))
        .values(
            message_sealed=None,
            contact_detail_sealed=None,
            alias_sealed=None,
            content_purged_at=purged_on,
            **days,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def orgs_with_requests(session: AsyncSession, limit: int) -> Sequence[str]:
    """Every organisation that has requests (the report-cell warmer's default)."""
    query = sa.select(col(ContactRequest.org_id)).distinct().limit(limit)
    return (await session.execute(query)).scalars().all()
