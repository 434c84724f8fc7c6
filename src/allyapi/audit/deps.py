"""The audit trail's reading service as a route dependency (recording is ``audit/trail.py``'s
``Audit``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.audit.service import AuditEventService
from allyapi.core.db.session import Session


async def audit_event_service(session: Session) -> AuditEventService:
    return AuditEventService(session)


AuditEvents = Annotated[AuditEventService, Depends(audit_event_service)]
