"""Writing the audit trail: one dependency routes use after the change they made.

The trail shares the route's session, so an event commits with the change it describes or
not at all. Only programme actions are recorded (coordinators, integration clients); routes
of contact requests, feedback and access logs never take this dependency (docs/audit.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends

from allyapi.audit.models import ActorKind
from allyapi.audit.repository import AuditRepository
from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.security import Caller, PseudonymKey
from allyapi.core.auth.tokens import Principal
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Session

NAME_MAX = 100


class AuditTrail:
    def __init__(self, repo: AuditRepository, caller: Principal, key: bytes) -> None:
        self.repo = repo
        self.org = caller.org
        # A token with the coordinator role acts as programme staff, whatever else it holds.
        if caller.has("coordinator"):
            self.kind, self.actor_id = ActorKind.staff, subject_ref(key, "audit", caller.subject)
        else:
            self.kind, self.actor_id = ActorKind.integration, caller.sub
        self.actor_name = caller.name[:NAME_MAX] if caller.name else None

    def __repr__(self) -> str:
        return f"AuditTrail(org={self.org!r}, kind={self.kind})"

    async def record(
        self,
        action: AuditAction,
        target_type: AuditTarget,
        target_id: uuid.UUID | None = None,
        changed: Iterable[str] = (),
        *,
        once: bool = False,
    ) -> None:
        """One event. ``once``: skip it when this action on this target is already recorded
        (a create answered again for its Idempotency-Key changed nothing)."""
        target = None if target_id is None else str(target_id)
        if once and target is not None and await self.repo.exists(self.org, action, target):
            return
        await self.record_many(action, target_type, [target_id], changed)

    async def record_many(
        self,
        action: AuditAction,
        target_type: AuditTarget,
        target_ids: Iterable[uuid.UUID | None],
        changed: Iterable[str] = (),
    ) -> None:
        """One event per target (a roster sync's leavers, a batch's written rows)."""
        now, fields = utcnow(), sorted(set(changed))
        rows = [
            {
                "id": uuid.uuid4(),
                "org_id": self.org,
                "occurred_at": now,
                "actor_kind": self.kind,
                "actor_id": self.actor_id,
                "actor_name": self.actor_name,
                "action": action,
                "target_type": target_type,
                "target_id": None if target_id is None else str(target_id),
                "changed": fields,
            }
            for target_id in target_ids
        ]
        await self.repo.append(rows)


async def audit_trail(caller: Caller, session: Session, key: PseudonymKey) -> AuditTrail:
    return AuditTrail(AuditRepository(session), caller, key)


Audit = Annotated[AuditTrail, Depends(audit_trail)]
