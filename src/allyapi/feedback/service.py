"""Giving feedback: on one's own completed request (once), and anonymously on the programme.

Neither path honours ``Idempotency-Key``: an idempotency record keeps the caller's reference
next to the created row's id, which is exactly the link anonymous programme feedback must
not have. Request feedback is naturally safe to retry: a second attempt answers 409.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from allyapi.aggregates.buckets import Interval, as_instant, next_bucket
from allyapi.contact_requests.models import RequestStatus
from allyapi.core.auth.pseudonym import Subject, requester_ref, subject_ref
from allyapi.core.db.models import today, utcnow
from allyapi.core.http.errors import Conflict, NotFound, TooManyRequests
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.feedback.models import ProgramFeedback, RequestFeedback
from allyapi.feedback.repository import FeedbackRepository
from allyapi.feedback.schemas import (
    ProgramFeedbackCreate,
    ProgramFeedbackReceipt,
    RequestFeedbackCreate,
    RequestFeedbackPublic,
)

# Programme answers per person, category and calendar month: the cells of the programme
# summary are (month, category), so each answer in a cell is a different person (k counts
# people, docs/aggregates.md).
PROGRAM_ANSWERS_PER_MONTH = 1


class CommentAfterPurge(Conflict):
    slug, title = "content-purged", "The request's content was purged"


def month_of(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def seconds_to_next_month(now: datetime) -> int:
    start = next_bucket(now.date().replace(day=1), Interval.month)
    return max(1, int((as_instant(start) - now).total_seconds()))


class FeedbackService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repo = FeedbackRepository(session)
        self.cipher = Cipher(settings.data_key_ring)

    async def give_request_feedback(
        self, who: Subject, request_id: uuid.UUID, body: RequestFeedbackCreate
    ) -> RequestFeedbackPublic:
        org = who.org
        request = await self.repo.contact_request(org, request_id)
        mine = requester_ref(self.settings.pseudonym_key_bytes, who)
        # Anyone but the requester gets the answer a missing id gets (docs/privacy.md, P2, P8);
        # an erased request no longer exists for its requester either.
        if (
            request is None
            or not hmac.compare_digest(request.requester_ref, mine)
            or request.erased_at is not None
        ):
            raise NotFound("contact request not found")
        if request.status != RequestStatus.completed:
            raise Conflict("feedback can be given once the request is completed")
        if body.comment is not None and request.content_purged_at is not None:
            # The comment would be protected content of a request whose content the
            # retention period already destroyed (docs/request-lifecycle.md).
            raise CommentAfterPurge(
                "this request's content was removed after the retention period; "
                "feedback on it can no longer carry a comment"
            )
        feedback = RequestFeedback(
            org_id=org,
            request_id=request.id,
            ally_id=request.ally_id,
            topic=request.topic,
            rating=body.rating,
            felt_heard=body.felt_heard,
            would_recommend=body.would_recommend,
            created_on=today(),
        )
        feedback.comment_sealed = self.cipher.seal_optional(
            body.comment, aad_for("request_feedback", feedback.id, "comment")
        )
        if not await self.repo.add_once(feedback):
            raise Conflict("feedback was already given for this request")
        return RequestFeedbackPublic(
            request_id=request.id,
            rating=feedback.rating,
            felt_heard=feedback.felt_heard,
            would_recommend=feedback.would_recommend,
            comment=body.comment,
            created_on=feedback.created_on,
        )

    async def give_program_feedback(
        self, who: Subject, body: ProgramFeedbackCreate, quota: AsyncConnection
    ) -> ProgramFeedbackReceipt:
        """``quota``: an autocommit connection; the month's answer for the category is
        counted there, apart from the feedback (see ``FeedbackRepository.consume_quota``)."""
        now = utcnow()
        period = month_of(now.date())
        org = who.org
        purpose = f"feedback:{period}:{body.category.value}"
        bucket = subject_ref(self.settings.pseudonym_key_bytes, purpose, who)
        limit = PROGRAM_ANSWERS_PER_MONTH
        if not await FeedbackRepository.consume_quota(quota, org, bucket, period, limit):
            raise TooManyRequests(
                "one programme answer per category per calendar month: this month's is in",
                retry_after=seconds_to_next_month(now),
            )
        feedback = ProgramFeedback(
            org_id=org, category=body.category, rating=body.rating, created_on=now.date()
        )
        feedback.comment_sealed = self.cipher.seal_optional(
            body.comment, aad_for("program_feedback", feedback.id, "comment")
        )
        self.repo.add_program(feedback)
        await self.session.flush()
        return ProgramFeedbackReceipt(
            category=body.category,
            rating=body.rating,
            comment=body.comment,
            created_on=feedback.created_on,
        )
