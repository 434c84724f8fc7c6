"""/v1/contact-requests/{id}/feedback, /v1/feedback and /v1/feedback/summary
(docs/aggregates.md)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from allyapi.core.auth.security import EmployeeOnly
from allyapi.core.db.models import today
from allyapi.core.db.session import Autocommit
from allyapi.core.http.openapi import AGGREGATE, problem_responses
from allyapi.core.http.schemas import QueryDate
from allyapi.feedback.deps import Feedback, Summaries, SummaryReader
from allyapi.feedback.schemas import (
    FeedbackSummary,
    ProgramFeedbackCreate,
    ProgramFeedbackReceipt,
    RequestFeedbackCreate,
    RequestFeedbackPublic,
)

router = APIRouter(tags=["feedback"])


@router.post(
    "/contact-requests/{request_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    summary="Give feedback on one's own completed request (once)",
    responses=problem_responses(409),
)
async def give_request_feedback(
    caller: EmployeeOnly,
    feedback: Feedback,
    request_id: uuid.UUID,
    body: RequestFeedbackCreate,
) -> RequestFeedbackPublic:
    """Only the requester, only once, only after `completed` (409 otherwise).

    Once the request's content was purged after the retention period, feedback may still
    rate it but can no longer carry a comment (409 `content-purged`).

    Anyone else gets 404, as for a request that does not exist. The comment is encrypted at
    rest and is shown to coordinators and the ally only in aggregate, k-anonymous.
    """
    return await feedback.give_request_feedback(caller.subject, request_id, body)


@router.post(
    "/feedback",
    status_code=status.HTTP_201_CREATED,
    summary="Give anonymous programme feedback",
    responses=problem_responses(429),
)
async def give_program_feedback(
    caller: EmployeeOnly,
    feedback: Feedback,
    quota: Autocommit,
    body: ProgramFeedbackCreate,
) -> ProgramFeedbackReceipt:
    """Stored with no link to the person. One answer per person, category and calendar
    month (429 with `Retry-After` until the next month): the summary's cells are
    (month, category), so each answer in one is a different person."""
    return await feedback.give_program_feedback(caller.subject, body, quota)


@router.get("/feedback/summary", summary="Feedback summary (k-anonymous)", openapi_extra=AGGREGATE)
async def get_feedback_summary(
    scope: SummaryReader,
    summaries: Summaries,
    from_: Annotated[
        QueryDate | None,
        Query(
            alias="from",
            description="First day (1970-01-01..9998-12-31); snapped to its month. Default: a year ago",
        ),
    ] = None,
    to: Annotated[
        QueryDate | None,
        Query(
            description="Last day (1970-01-01..9998-12-31); snapped to its month's end. Default: today"
        ),
    ] = None,
) -> FeedbackSummary:
    """Coordinators: the programme, or one ally with `ally_id`. Allies: their own only.

    Each (month, ally) and (month, category) cell shows the feedback of its first ⌊n/k⌋·k
    people in the order they arrived, so figures move only in steps of k people; below k
    they are `null` with `suppressed: true`. Comments likewise in steps of k_comments, without
    dates, in random order (docs/aggregates.md).
    """
    last = to or today()
    first = from_ or last - timedelta(days=365)
    return await summaries.summary(scope, first, last)
