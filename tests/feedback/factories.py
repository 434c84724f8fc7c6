"""Rows for feedback and report tests, written directly (the request endpoints are elsewhere)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.auth.pseudonym import requester_ref
from allyapi.core.auth.tokens import dev_subject
from tests.factories import add_ally
from tests.helpers import ORG, TokenFactory


async def ally(
    session: AsyncSession, tokens: TokenFactory, sub: str, org: str = ORG, **fields: Any
) -> Ally:
    status = fields.pop("status", "active")
    return await add_ally(
        session,
        tokens.ally_ref(sub, org),
        org=org,
        display_name=f"Ally {sub}",
        status=status,
        **fields,
    )


async def contact_request(
    session: AsyncSession,
    tokens: TokenFactory,
    requester: str,
    *,
    org: str = ORG,
    ally_id: uuid.UUID | None = None,
    status: str = "completed",
    topic: str = "stress",
    urgency: str = "normal",
    created_at: datetime | None = None,
    accepted_after: timedelta | None = timedelta(hours=2),
    signposted: bool | None = None,
    wellbeing: int | None = None,
) -> ContactRequest:
    created = created_at or datetime.now(UTC) - timedelta(days=1)
    row = ContactRequest(
        org_id=org,
        requester_ref=requester_ref(
            tokens.settings.pseudonym_key_bytes, dev_subject(tokens.settings, org, requester)
        ),
        ally_id=ally_id,
        topic=topic,
        urgency=urgency,
        status=status,
        created_at=created,
        updated_at=created,
        accepted_at=None if accepted_after is None else created + accepted_after,
        signposted=signposted,
        wellbeing=wellbeing,
    )
    session.add(row)
    await session.commit()
    return row
