"""Feedback bodies and views. No view carries a requester reference, a person or a timestamp."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from allyapi.core.http.schemas import PublicSchema, RequestBody
from allyapi.feedback.models import FeedbackCategory
from allyapi.reports.anonymity import Figure

Rating = Annotated[int, Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")]
Comment = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
MAX_COMMENTS = 200


class RequestFeedbackCreate(RequestBody):
    rating: Rating
    felt_heard: bool
    would_recommend: bool
    comment: Comment | None = Field(
        default=None, description="Encrypted at rest; shown only in aggregate (k-anonymous)"
    )


class RequestFeedbackPublic(PublicSchema):
    """The requester's own feedback, as stored (dates are days, never times)."""

    request_id: uuid.UUID
    rating: int = Field(ge=1, le=5)
    felt_heard: bool
    would_recommend: bool
    comment: str | None = Field(default=None, max_length=2000)
    created_on: date


class ProgramFeedbackCreate(RequestBody):
    category: FeedbackCategory
    rating: Rating
    comment: Comment | None = None


class ProgramFeedbackReceipt(PublicSchema):
    """What was stored: no id (nothing about it can be looked up again), no person."""

    category: FeedbackCategory
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)
    created_on: date


class Comments(PublicSchema):
    suppressed: bool = Field(description="True below k_comments respondents")
    items: list[Annotated[str, StringConstraints(max_length=2000)]] | None = Field(
        default=None,
        max_length=MAX_COMMENTS,
        description="Random order, no dates; at most 200, a random sample when there are more",
    )


class RequestFeedbackSummary(PublicSchema):
    responses: Figure
    rating_average: Figure
    felt_heard_rate: Figure
    would_recommend_rate: Figure
    comments: Comments


class CategorySummary(PublicSchema):
    category: FeedbackCategory
    responses: Figure
    rating_average: Figure


class ProgramFeedbackSummary(PublicSchema):
    responses: Figure
    rating_average: Figure
    categories: list[CategorySummary] = Field(max_length=len(FeedbackCategory))
    comments: Comments


class FeedbackSummary(PublicSchema):
    scope: Literal["programme", "ally"]
    ally_id: uuid.UUID | None
    starts_on: date = Field(description="`from` snapped back to the first day of its month")
    ends_on: date = Field(description="`to` snapped forward to the last day of its month")
    requests: RequestFeedbackSummary
    programme: ProgramFeedbackSummary | None = Field(
        description="Anonymous programme feedback; only in the programme scope"
    )
