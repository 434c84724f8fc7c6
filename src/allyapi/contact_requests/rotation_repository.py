"""The statements of ``allyapi rotate-keys`` for contact requests (contact_requests/rotation.py
decides what is re-sealed and how): requests still holding values sealed directly under the
configured keys, claimed in batches, and their values read and written back.

A value is *legacy* when it does not start with the data-key prefix: sealed before
per-request data keys existed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import ContactMessage, ContactRequest
from allyapi.core.db.models import table_of
from allyapi.core.privacy.crypto import DATA_KEY_PREFIX

REQUESTS = table_of(ContactRequest)
MESSAGES = table_of(ContactMessage)
FIELDS = ("message", "contact_detail", "alias")  # each stored as ``<name>_sealed``


def _legacy(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Sealed directly under the configured keys (substr, not LIKE: no wildcards)."""
    prefix = sa.func.substr(column, 1, len(DATA_KEY_PREFIX))
    return sa.and_(column.is_not(None), prefix != DATA_KEY_PREFIX)


def _has_legacy_values() -> sa.ColumnElement[bool]:
    legacy_message = (
        sa.select(sa.literal(1))
        .where(MESSAGES.c.request_id == REQUESTS.c.id, _legacy(MESSAGES.c.body_sealed))
        .exists()
    )
    return sa.or_(*(_legacy(REQUESTS.c[f"{name}_sealed"]) for name in FIELDS), legacy_message)


async def claim_legacy_requests(
    session: AsyncSession, after: uuid.UUID | None, batch_size: int
) -> list[tuple[uuid.UUID, str]]:
    """(id, org id) of up to ``batch_size`` requests after ``after`` (id order) with a legacy
    value, locked ``FOR UPDATE SKIP LOCKED``: a request someone is writing to waits for the
    next run."""
    query = sa.select(REQUESTS.c.id, REQUESTS.c.org_id).where(_has_legacy_values())
    if after is not None:
        query = query.where(REQUESTS.c.id > after)
    query = query.order_by(REQUESTS.c.id).limit(batch_size).with_for_update(skip_locked=True)
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def sealed_values(session: AsyncSession, request_id: uuid.UUID) -> dict[str, str | None]:
    """The request's sealed values, by field name (``FIELDS``)."""
    row = (
        await session.execute(
            sa.select(*(REQUESTS.c[f"{name}_sealed"] for name in FIELDS)).where(
                REQUESTS.c.id == request_id
            )
        )
    ).one()
    return dict(zip(FIELDS, row, strict=True))


async def update_sealed_values(
    session: AsyncSession, request_id: uuid.UUID, changes: Mapping[str, str]
) -> None:
    """Write re-sealed values, by field name."""
    values = {f"{name}_sealed": value for name, value in changes.items()}
    await session.execute(sa.update(REQUESTS).where(REQUESTS.c.id == request_id).values(values))


async def legacy_messages(
    session: AsyncSession, request_id: uuid.UUID
) -> list[tuple[uuid.UUID, str]]:
    """(id, sealed body) of the request's thread messages still sealed the older way."""
    rows = await session.execute(
        sa.select(MESSAGES.c.id, MESSAGES.c.body_sealed).where(
            MESSAGES.c.request_id == request_id, _legacy(MESSAGES.c.body_sealed)
        )
    )
    return [(row[0], row[1]) for row in rows.all()]


async def update_message_body(session: AsyncSession, message_id: uuid.UUID, sealed: str) -> None:
    await session.execute(
        sa.update(MESSAGES).where(MESSAGES.c.id == message_id).values(body_sealed=sealed)
    )


async def count_legacy_values(session: AsyncSession) -> int:
    """How many values (request fields and thread bodies) are still sealed the older way."""
    remaining = 0
    for column in (*(REQUESTS.c[f"{name}_sealed"] for name in FIELDS), MESSAGES.c.body_sealed):
        remaining += int(
            await session.scalar(
                sa.select(sa.func.count()).select_from(column.table).where(_legacy(column))
            )
            or 0
        )
    return remaining
