"""Expiry, retention purge (docs/privacy.md, P7) and idempotency-key cleanup, driven by setting
dates in the past."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    RequesterLoad,
    RequestStatus,
)
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.privacy.crypto import Cipher
from allyapi.core.settings import Settings
from allyapi.jobs import contact_requests as jobs
from allyapi.jobs.contact_requests import run_all_jobs
from tests.factories import make_ally, make_request, set_requester_load
from tests.helpers import ORG

T = TypeVar("T")
PAST = timedelta(minutes=1)


@pytest.fixture
def cipher(settings: Settings) -> Cipher:
    return Cipher(settings.data_key_ring)


async def fresh(session: AsyncSession, model: type[T], key: Any) -> T:
    row = await session.get(model, key, populate_existing=True)
    assert row is not None
    return row


async def count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(
        await session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0
    )


async def test_expiry_closes_due_pending_requests_and_frees_both_counters(
    session: AsyncSession, settings: Settings, database: Database, cipher: Cipher
) -> None:
    now = utcnow()
    ally = await make_ally(session, settings, open_requests=3)
    ref = await set_requester_load(session, settings, "emp-1", 3)
    due = await make_request(session, settings, cipher, ally=ally, expires_at=now - PAST)
    not_due = await make_request(session, settings, cipher, ally=ally, expires_at=now + PAST)
    accepted = await make_request(
        session, settings, cipher, ally=ally, status=RequestStatus.accepted, expires_at=now - PAST
    )

    counts = await run_all_jobs(database, settings, now=now)

    assert counts.expired == 1
    expired = await fresh(session, ContactRequest, due.id)
    assert expired.status == RequestStatus.expired
    assert expired.closed_at == now
    assert expired.content_purge_at == now + timedelta(days=settings.retention_days)
    assert expired.message_sealed is not None  # content stays until the retention period ends
    assert (await fresh(session, ContactRequest, not_due.id)).status == RequestStatus.pending
    assert (await fresh(session, ContactRequest, accepted.id)).status == RequestStatus.accepted
    assert (await fresh(session, Ally, ally.id)).open_requests == 2
    assert (await fresh(session, RequesterLoad, (ORG, ref))).open_requests == 2

    again = await run_all_jobs(database, settings, now=now)  # idempotent
    assert again.expired == 0
    assert (await fresh(session, Ally, ally.id)).open_requests == 2
    assert (await fresh(session, RequesterLoad, (ORG, ref))).open_requests == 2


async def test_expiry_of_a_request_without_ally_and_a_drifted_counter_never_fails(
    session: AsyncSession, settings: Settings, database: Database, cipher: Cipher
) -> None:
    """Counters clamp at zero: one bad counter must not stop expiry for everyone."""
    now = utcnow()
    ally = await make_ally(session, settings, open_requests=0)
    await make_request(session, settings, cipher, ally=ally, expires_at=now - PAST)
    await make_request(session, settings, cipher, ally=None, sub="emp-2", expires_at=now - PAST)

    assert (await run_all_jobs(database, settings, now=now)).expired == 2
    assert (await fresh(session, Ally, ally.id)).open_requests == 0


async def test_expiry_works_in_bounded_batches(
    session: AsyncSession,
    settings: Settings,
    database: Database,
    cipher: Cipher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "BATCH_SIZE", 2)
    now = utcnow()
    ally = await make_ally(session, settings, capacity=10, open_requests=5)
    for _ in range(5):
        await make_request(session, settings, cipher, ally=ally, expires_at=now - PAST)

    assert (await run_all_jobs(database, settings, now=now)).expired == 5
    assert (await fresh(session, Ally, ally.id)).open_requests == 0


async def test_purge_destroys_content_thread_and_access_log_after_retention(
    session: AsyncSession, settings: Settings, database: Database, cipher: Cipher
) -> None:
    now = utcnow()
    closed = now - timedelta(days=settings.retention_days, hours=1)
    ally = await make_ally(session, settings)
    due = await make_request(
        session,
        settings,
        cipher,
        ally=ally,
        status=RequestStatus.completed,
        closed_at=closed,
        content_purge_at=closed + timedelta(days=settings.retention_days),
        thread=("hello", "hi, I am here"),
    )
    kept = await make_request(
        session,
        settings,
        cipher,
        ally=ally,
        status=RequestStatus.completed,
        closed_at=now,
        content_purge_at=now + timedelta(days=settings.retention_days),
        thread=("still within retention",),
    )

    assert (await run_all_jobs(database, settings, now=now)).purged == 1

    purged = await fresh(session, ContactRequest, due.id)
    assert (purged.message_sealed, purged.contact_detail_sealed, purged.alias_sealed) == (
        None,
        None,
        None,
    )
    assert purged.content_purged_at is not None
    assert (purged.topic, purged.urgency, purged.status) == ("stress", "normal", "completed")
    for stamp in (purged.created_at, purged.updated_at, purged.closed_at, purged.expires_at):
        assert stamp is not None
        assert (stamp.hour, stamp.minute, stamp.second, stamp.microsecond) == (0, 0, 0, 0)
    assert await count(session, ContactMessage, col(ContactMessage.request_id) == due.id) == 0
    assert await count(session, AccessLogEntry, col(AccessLogEntry.request_id) == due.id) == 0

    untouched = await fresh(session, ContactRequest, kept.id)
    assert untouched.message_sealed is not None
    assert untouched.content_purged_at is None
    assert await count(session, ContactMessage, col(ContactMessage.request_id) == kept.id) == 1
    assert (await run_all_jobs(database, settings, now=now)).purged == 0  # idempotent


async def test_purge_never_touches_an_open_request(
    session: AsyncSession, settings: Settings, database: Database, cipher: Cipher
) -> None:
    """A purge date left on a request that was re-opened (declined → re-matched) is ignored."""
    now = utcnow()
    ally = await make_ally(session, settings)
    reopened = await make_request(
        session, settings, cipher, ally=ally, content_purge_at=now - PAST, thread=("hi",)
    )

    assert (await run_all_jobs(database, settings, now=now)).purged == 0
    assert (await fresh(session, ContactRequest, reopened.id)).message_sealed is not None


async def test_expired_requests_are_purged_once_their_retention_passes(
    session: AsyncSession, settings: Settings, database: Database, cipher: Cipher
) -> None:
    start = utcnow()
    ally = await make_ally(session, settings, open_requests=1)
    request = await make_request(session, settings, cipher, ally=ally, expires_at=start - PAST)
    assert (await run_all_jobs(database, settings, now=start)).expired == 1

    later = start + timedelta(days=settings.retention_days, seconds=1)
    assert (await run_all_jobs(database, settings, now=later)).purged == 1
    assert (await fresh(session, ContactRequest, request.id)).message_sealed is None


async def test_old_idempotency_keys_are_deleted_and_live_ones_kept(
    session: AsyncSession, settings: Settings, database: Database
) -> None:
    now = utcnow()
    for key, expires in (("old", now - PAST), ("live", now + timedelta(hours=23))):
        session.add(
            IdempotencyKey(
                org_id=ORG,
                caller_ref="c" * 64,
                key=key,
                operation="create_contact_request",
                request_hash="h" * 64,
                resource_id=uuid.uuid4(),
                status_code=201,
                expires_at=expires,
            )
        )
    await session.commit()

    assert (await run_all_jobs(database, settings, now=now)).idempotency_keys_deleted == 1
    keys = (await session.scalars(sa.select(col(IdempotencyKey.key)))).all()
    assert keys == ["live"]


@pytest.mark.postgres_only
async def test_jobs_in_several_processes_at_once_change_each_row_once(
    session: AsyncSession, settings: Settings, cipher: Cipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four runners with their own engines (as four processes would) race over 40 due rows."""
    import asyncio

    monkeypatch.setattr(jobs, "BATCH_SIZE", 3)
    now = utcnow()
    ally = await make_ally(session, settings, capacity=50, open_requests=40)
    ref = await set_requester_load(session, settings, "emp-1", 40)
    for _ in range(40):
        await make_request(session, settings, cipher, ally=ally, expires_at=now - PAST)

    runners = [Database(settings) for _ in range(4)]
    try:
        results = await asyncio.gather(*(run_all_jobs(db, settings, now=now) for db in runners))
    finally:
        for db in runners:
            await db.dispose()

    assert sum(result.expired for result in results) == 40
    assert (await fresh(session, Ally, ally.id)).open_requests == 0
    # Every slot freed exactly once: 40 → 0, and a person's row at zero is deleted.
    assert await session.get(RequesterLoad, (ORG, ref), populate_existing=True) is None
    statuses = await count(
        session, ContactRequest, col(ContactRequest.status) == RequestStatus.expired
    )
    assert statuses == 40
