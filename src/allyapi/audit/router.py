"""/v1/audit-events: the programme's own audit trail, for coordinators (docs/audit.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from allyapi.audit.deps import AuditEvents
from allyapi.audit.repository import AuditFilter
from allyapi.audit.schemas import AuditAction, AuditEventPublic, AuditTarget
from allyapi.core.auth.security import CoordinatorOnly
from allyapi.core.http.errors import InvalidInput
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import Page, QueryInstant

router = APIRouter(prefix="/audit-events", tags=["audit"])

Instant = QueryInstant | None


@router.get("", summary="The programme's audit trail, newest first")
async def list_audit_events(
    caller: CoordinatorOnly,
    events: AuditEvents,
    page: PageQuery,
    actor: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="An actor `id` from an event"),
    ] = None,
    action: AuditAction | None = None,
    target_type: AuditTarget | None = None,
    target_id: Annotated[
        uuid.UUID | None, Query(description="The id of the ally, course, record, ...")
    ] = None,
    since: Annotated[Instant, Query(description="Events at or after this instant")] = None,
    until: Annotated[Instant, Query(description="Events before this instant")] = None,
) -> Page[AuditEventPublic]:
    """What coordinators and integration clients changed: approvals, pauses, suspensions,
    retirements, training records, courses, resources, webhooks, topics, roster syncs. Never
    a contact request, a requester, feedback or an access-log read."""
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until", loc=("query", "until"))
    where = AuditFilter(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        since=since,
        until=until,
    )
    return await events.page(caller.org, where, page)
