"""Who may act on training records: coordinators for the org, allies for themselves.

Being an ally is not a token role (docs/allies.md): it is an ally profile whose ``subject_ref`` is
the caller's keyed reference. Any profile status counts, so an ``applied`` ally can report the
training their approval needs. Everyone else is refused with 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.security import Caller, PseudonymKey
from allyapi.core.db.session import Session
from allyapi.core.http.errors import Forbidden
from allyapi.training.batch import BatchService
from allyapi.training.compliance import ComplianceService
from allyapi.training.service import CourseService, RecordService, TrainingActor


async def course_service(session: Session) -> CourseService:
    return CourseService(session)


async def record_service(session: Session) -> RecordService:
    return RecordService(session)


async def batch_service(session: Session, key: PseudonymKey) -> BatchService:
    return BatchService(session, key)


async def compliance_service(session: Session) -> ComplianceService:
    return ComplianceService(session)


Courses = Annotated[CourseService, Depends(course_service)]
Records = Annotated[RecordService, Depends(record_service)]
Batches = Annotated[BatchService, Depends(batch_service)]
Compliance = Annotated[ComplianceService, Depends(compliance_service)]


async def coordinator_or_ally(caller: Caller, records: Records, key: PseudonymKey) -> TrainingActor:
    if caller.has("coordinator"):
        return TrainingActor(org=caller.org, coordinator=True, ally_id=None)
    if caller.has("employee"):
        ref = subject_ref(key, "ally", caller.subject)
        ally_id = await records.ally_of(caller.org, ref)
        if ally_id is not None:
            return TrainingActor(org=caller.org, coordinator=False, ally_id=ally_id)
    raise Forbidden("training records are for coordinators and the ally concerned")


CoordinatorOrAlly = Annotated[TrainingActor, Depends(coordinator_or_ally)]
