"""What happens to an ally's requests when the ally stops being available.

SPEC §3: "pausing or retiring hands the ally's pending requests back for re-matching". The
ally service calls ``on_ally_unavailable`` after pausing or retiring (also for leavers of a
roster sync), in the same transaction, so the status change and the hand-back commit together.

Handed back = the request stays ``pending`` with no ally (``ally_id`` NULL): it is waiting to be
matched again, and nobody who was not assigned can read its content. The ally's
``open_requests`` counter drops by the number handed back, so the counter still equals the
ally's open requests. Accepted requests stay with the ally: the conversation has started, and
the requester can close it or ask someone else.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.core.models import utcnow


async def on_ally_unavailable(session: AsyncSession, org_id: str, ally_id: uuid.UUID) -> int:
    """Hand the ally's pending requests back for re-matching; returns how many."""
    now = utcnow()
    result = await session.execute(
        sa.update(ContactRequest)
        .where(
            col(ContactRequest.org_id) == org_id,
            col(ContactRequest.ally_id) == ally_id,
            col(ContactRequest.status) == RequestStatus.pending,
        )
        .values(ally_id=None, updated_at=now, version=col(ContactRequest.version) + 1)
        .execution_options(synchronize_session=False)
    )
    handed_back = int(getattr(result, "rowcount", 0) or 0)
    if handed_back:
        remaining = col(Ally.open_requests) - handed_back
        await session.execute(
            sa.update(Ally)
            .where(col(Ally.org_id) == org_id, col(Ally.id) == ally_id)
            .values(open_requests=sa.case((remaining > 0, remaining), else_=0))
            .execution_options(synchronize_session=False)
        )
    return handed_back
