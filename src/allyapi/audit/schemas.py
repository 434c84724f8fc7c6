"""Audit trail responses: who, what, on what, when, and which fields (names only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from allyapi.audit.models import ActorKind, AuditEvent
from allyapi.core.http.schemas import PublicSchema


class AuditAction(StrEnum):
    """Every action the trail records, as ``<target>.<verb>``."""

    ally_approve = "ally.approve"
    ally_pause = "ally.pause"
    ally_resume = "ally.resume"
    ally_retire = "ally.retire"
    ally_roster_retire = "ally.roster_retire"
    ally_scim_retire = "ally.scim_retire"
    ally_scim_reapply = "ally.scim_reapply"
    course_create = "training_course.create"
    course_update = "training_course.update"
    record_create = "training_record.create"
    record_verify = "training_record.verify"
    record_delete = "training_record.delete"
    record_batch_upsert = "training_record.batch_upsert"
    resource_create = "resource.create"
    resource_update = "resource.update"
    resource_delete = "resource.delete"
    webhook_create = "webhook.create"
    webhook_delete = "webhook.delete"
    webhook_delivery_retry = "webhook_delivery.retry"
    topic_create = "topic.create"
    topic_update = "topic.update"
    topic_delete = "topic.delete"


class AuditTarget(StrEnum):
    ally = "ally"
    training_course = "training_course"
    training_record = "training_record"
    resource = "resource"
    webhook = "webhook"
    webhook_delivery = "webhook_delivery"
    topic = "topic"


class AuditActor(PublicSchema):
    kind: ActorKind
    id: str = Field(
        max_length=256,
        description="Staff: a stable pseudonym of the person (never their `sub`); "
        "integration: the client's id (its token's `sub`)",
    )
    display_name: str | None = Field(
        default=None, max_length=100, description="The `name` claim of the token, if any"
    )


class AuditEventPublic(PublicSchema):
    id: uuid.UUID
    occurred_at: datetime
    actor: AuditActor
    action: AuditAction
    target_type: AuditTarget
    target_id: str | None = Field(default=None, max_length=64)
    changed: list[Annotated[str, Field(max_length=100)]] = Field(
        max_length=50, description="Names of the fields the action set; never their values"
    )


def event_view(row: AuditEvent) -> AuditEventPublic:
    return AuditEventPublic(
        id=row.id,
        occurred_at=row.occurred_at,
        actor=AuditActor(
            kind=ActorKind(row.actor_kind), id=row.actor_id, display_name=row.actor_name
        ),
        action=AuditAction(row.action),
        target_type=AuditTarget(row.target_type),
        target_id=row.target_id,
        changed=row.changed,
    )
