"""Who is asking for a feedback summary, as a route dependency.

A coordinator reads the programme or any ally's summary; an ally (an employee with an ally
profile, found by subject_ref(key, "ally", caller), any profile status) reads only their
own. Analysts are refused (403): the roles give summaries to coordinators and allies, and
analysts' view of feedback is the programme report's aggregate feedback averages. Employees
without a profile and integrations are refused too.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.security import AppSettings, Caller, PseudonymKey
from allyapi.core.db.session import Session
from allyapi.core.http.errors import Forbidden, NotFound
from allyapi.feedback.repository import FeedbackRepository
from allyapi.feedback.service import FeedbackService
from allyapi.feedback.summary import SummaryScope, SummaryService


async def feedback_service(session: Session, settings: AppSettings) -> FeedbackService:
    return FeedbackService(session, settings)


async def summary_service(session: Session, settings: AppSettings) -> SummaryService:
    return SummaryService(session, settings)


Feedback = Annotated[FeedbackService, Depends(feedback_service)]
Summaries = Annotated[SummaryService, Depends(summary_service)]


async def summary_scope(
    key: PseudonymKey,
    caller: Caller,
    session: Session,
    ally_id: Annotated[
        uuid.UUID | None,
        Query(description="Coordinators: one ally's summary (omit for the programme)"),
    ] = None,
) -> SummaryScope:
    repo = FeedbackRepository(session)
    if caller.has("coordinator"):
        if ally_id is not None and not await repo.ally_exists(caller.org, ally_id):
            raise NotFound("ally not found")
        return SummaryScope(org=caller.org, ally_id=ally_id)
    if caller.has("employee"):
        ref = subject_ref(key, "ally", caller.subject)
        own = await repo.ally_of_subject(caller.org, ref)
        if own is not None:
            if ally_id is not None and ally_id != own:
                raise Forbidden("an ally reads only their own feedback summary")
            return SummaryScope(org=caller.org, ally_id=own)
    raise Forbidden("feedback summaries are for coordinators and the ally concerned")


SummaryReader = Annotated[SummaryScope, Depends(summary_scope)]
