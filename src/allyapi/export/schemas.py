"""The right-of-access document: everything held about the caller, in one JSON document.

Declared here as schema for the contract; the route writes it incrementally (service.py), and
a test validates a streamed document against ``MeExport``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from allyapi.allies.schemas import AllyOwnView
from allyapi.audit.schemas import AuditEventPublic
from allyapi.contact_requests.schemas import (
    AccessLogEntryPublic,
    ContactRequestAllySummary,
    ContactRequestRequesterView,
    MessagePublic,
)
from allyapi.contact_requests.thread import MAX_MESSAGES
from allyapi.core.http.schemas import PublicSchema
from allyapi.feedback.schemas import RequestFeedbackPublic
from allyapi.training.schemas import TrainingRecordPublic

PROGRAMME_FEEDBACK_NOTE = (
    "Anonymous programme feedback (POST /v1/feedback) is not included: it is stored with no "
    "link to the person who gave it, so nothing can find it or attribute it to you."
)
REQUESTS_NOTE = (
    "Contact requests are used and exported only with an employee session: a token that "
    "carries the coordinator or analyst role never reaches individual requests, your own "
    "included. Export again with your employee-only session to get them."
)
ALLY_NOTE = (
    "As an ally you get the requests assigned to you without their content: what people "
    "wrote is theirs, and you read it through the request itself (each read is in their "
    "access log)."
)

# The document is streamed, so no list is held in memory; this only declares a bound far above
# any real history (a clients' generator may size buffers by it).
EXPORT_LIST_MAX = 1_000_000


class ExportedRequest(ContactRequestRequesterView):
    """A request you made: what you typed, its thread, who read it, your feedback."""

    messages: list[MessagePublic] = Field(max_length=MAX_MESSAGES)
    access_log: list[AccessLogEntryPublic] = Field(
        max_length=EXPORT_LIST_MAX,
        description="Every read of this request's content by the ally, newest first",
    )
    feedback: RequestFeedbackPublic | None = None


class ExportedAlly(PublicSchema):
    """Your ally profile (any status), your training records, the requests assigned to you."""

    profile: AllyOwnView
    training_records: list[TrainingRecordPublic] = Field(max_length=EXPORT_LIST_MAX)
    assigned_requests: list[ContactRequestAllySummary] = Field(max_length=EXPORT_LIST_MAX)


class MeExport(PublicSchema):
    generated_at: datetime
    requests_included: bool = Field(
        description="false for a token with the coordinator or analyst role (see `notes`)"
    )
    programme_feedback_included: Literal[False] = Field(
        description="Always false: anonymous programme feedback is linked to no one"
    )
    notes: list[Annotated[str, Field(max_length=1000)]] = Field(
        max_length=5, description="What the document leaves out, and why"
    )
    requests: list[ExportedRequest] = Field(
        max_length=EXPORT_LIST_MAX, description="Requests you made, newest first"
    )
    ally: ExportedAlly | None = Field(description="null when you never volunteered as an ally")
    audit_events: list[AuditEventPublic] = Field(
        max_length=EXPORT_LIST_MAX,
        description="Programme actions you took as a coordinator, newest first",
    )
