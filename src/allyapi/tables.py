"""Imports every table model so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from allyapi.aggregates.models import ArrivalClock, BucketArrivals
from allyapi.allies.models import Ally, AllyRankBand, AllyWindow, DirectoryGeneration
from allyapi.audit.models import AuditEvent
from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    ContactRequestKey,
    RequesterLoad,
)
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.http.ratelimit import RateLimitBucket
from allyapi.feedback.models import FeedbackQuota, ProgramFeedback, RequestFeedback
from allyapi.reports.models import ReportCellCache
from allyapi.resources.models import Resource
from allyapi.scim.models import AllyAccount
from allyapi.topics.models import Topic
from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.webhooks.models import WebhookDelivery, WebhookMarker, WebhookSubscription

metadata = SQLModel.metadata

__all__ = [
    "AccessLogEntry",
    "Ally",
    "AllyAccount",
    "AllyRankBand",
    "AllyWindow",
    "ArrivalClock",
    "AuditEvent",
    "BucketArrivals",
    "ContactMessage",
    "ContactRequest",
    "ContactRequestKey",
    "DirectoryGeneration",
    "FeedbackQuota",
    "IdempotencyKey",
    "ProgramFeedback",
    "RateLimitBucket",
    "ReportCellCache",
    "RequestFeedback",
    "RequesterLoad",
    "Resource",
    "Topic",
    "TrainingCourse",
    "TrainingRecord",
    "WebhookDelivery",
    "WebhookMarker",
    "WebhookSubscription",
    "metadata",
]
