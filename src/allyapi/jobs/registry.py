"""Every background job, in the order a server starts them (``JobRunner`` in the lifespan)."""

from __future__ import annotations

from allyapi.jobs.aggregates import ArrivalsAndReportCells
from allyapi.jobs.audit_retention import AuditRetention
from allyapi.jobs.contact_requests import ExpireAndPurgeRequests
from allyapi.jobs.idempotency_keys import DeleteExpiredIdempotencyKeys
from allyapi.jobs.listing_changes import ListingChanges
from allyapi.jobs.runner import Job
from allyapi.jobs.suggestion_bands import SuggestionBands
from allyapi.jobs.training_expiring import TrainingExpiring
from allyapi.jobs.webhooks import WebhookDeliveries


def all_jobs() -> list[Job]:
    """Fresh instances (a job may hold a client between runs of one server)."""
    return [
        ExpireAndPurgeRequests(),
        DeleteExpiredIdempotencyKeys(),
        AuditRetention(),
        ArrivalsAndReportCells(),
        WebhookDeliveries(),
        TrainingExpiring(),
        ListingChanges(),
        SuggestionBands(),
    ]
