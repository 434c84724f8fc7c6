"""Who may act on training records: coordinators for the org, allies for themselves.

Being an ally is not a token role (docs/allies.md): it is an ally profile whose ``subject_ref`` is
the caller's keyed reference. Any profile status counts, so an ``applied`` ally can report the
training their approval needs. Everyone else is refused with 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel

from allyapi.core.auth import Principal
from allyapi.core.database import Session
from allyapi.core.errors import Forbidden
from allyapi.core.idempotency import IdempotencyScope, body_hash
from allyapi.core.pseudonym import subject_ref
from allyapi.core.security import Caller, PseudonymKey
from allyapi.training.service import RecordService, TrainingActor


async def coordinator_or_ally(caller: Caller, session: Session, key: PseudonymKey) -> TrainingActor:
    if caller.has("coordinator"):
        return TrainingActor(org=caller.org, coordinator=True, ally_id=None)
    if caller.has("employee"):
        ref = subject_ref(key, "ally", caller.subject)
        ally_id = await RecordService(session).ally_of(caller.org, ref)
        if ally_id is not None:
            return TrainingActor(org=caller.org, coordinator=False, ally_id=ally_id)
    raise Forbidden("training records are for coordinators and the ally concerned")


CoordinatorOrAlly = Annotated[TrainingActor, Depends(coordinator_or_ally)]


def idempotency_scope(
    caller: Principal,
    key: bytes,
    idempotency_key: str | None,
    operation: str,
    body: BaseModel,
) -> IdempotencyScope | None:
    """The caller's Idempotency-Key for one create; its own keyed reference (purpose ``idem``),
    so the stored key cannot be joined to the caller's ally profile."""
    if idempotency_key is None:
        return None
    caller_ref = subject_ref(key, "idem", caller.subject)
    return IdempotencyScope(
        caller.org, caller_ref, idempotency_key, operation, body_hash(body, key)
    )
