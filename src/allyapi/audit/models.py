"""The programme's own audit trail: what coordinators and integration clients did.

Never a contact request, a requester, a feedback row or an access-log read: those are the
people the programme serves, and a trail of them would be the per-request stream the reports
suppress (docs/audit.md). ``changed`` holds field names only, never values.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import ORG_ID_MAX, json_column, utc_column


class ActorKind(StrEnum):
    staff = "staff"  # a person acting as coordinator: named by a pseudonym of their ``sub``
    integration = "integration"  # a machine client: named by its token's ``sub``


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_trail", "org_id", "occurred_at", "id"),
        sa.Index("ix_audit_events_target", "org_id", "target_type", "target_id"),
        sa.Index("ix_audit_events_purge", "occurred_at"),
        sa.CheckConstraint("actor_kind IN ('staff', 'integration')", name="actor_kind_known"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX)
    occurred_at: datetime = utc_column()
    actor_kind: str = Field(max_length=16)
    # Staff: subject_ref(key, "audit", caller), stable per person, joinable with nothing
    # else. Integration: the client's ``sub`` as its token says (a service, not a person).
    actor_id: str = Field(max_length=256)
    actor_name: str | None = Field(default=None, max_length=100)  # the token's ``name``
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    changed: list[str] = json_column()
