"""Contact requests, their thread and their access log (docs/privacy.md, P1–P5, P7).

What is stored about a person asking for help:
- ``requester_ref`` = HMAC(pseudonym key, org:sub) (P1); never the sub, a name or an email;
- message, contact detail, alias and thread bodies only as AES-GCM ciphertext (P4), bound to
  their row and field; erased at once on request and purged after retention (P7);
- non-identifying facts kept for statistics: topic, urgency, language, status, dates.

Capacity and caps are counters changed by conditional UPDATEs in the same transaction as the
status change, so they hold with many processes: ``Ally.open_requests`` (see
allies/models.py; the directory and suggestions rank by it — it *is* the ally's load) and
``RequesterLoad.open_requests``. "Open" = ``pending`` or ``accepted``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from allyapi.core.db.models import (
    ORG_ID_MAX,
    TenantRow,
    Versioned,
    arrival_marks,
    arrival_seq,
    json_column,
    utc_column,
)


class RequestStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    declined = "declined"  # every fitting ally declined; no re-match was possible
    completed = "completed"
    cancelled = "cancelled"
    expired = "expired"


OPEN_STATUSES = (RequestStatus.pending, RequestStatus.accepted)

# A contribution of the row has not arrived in the aggregates yet (aggregates/arrivals.py).
ARRIVING = sa.text(
    "created_seq IS NULL"
    " OR (accepted_at IS NOT NULL AND accepted_seq IS NULL)"
    " OR (status = 'completed' AND completed_seq IS NULL)"
    " OR (status = 'completed' AND wellbeing IS NOT NULL AND wellbeing_seq IS NULL)"
)


class ContactRequest(TenantRow, Versioned, table=True):
    __tablename__ = "contact_requests"
    __table_args__ = (
        sa.Index("ix_contact_requests_requester", "org_id", "requester_ref", "created_at", "id"),
        sa.Index("ix_contact_requests_ally", "ally_id", "status", "created_at", "id"),
        sa.Index("ix_contact_requests_expiry", "status", "expires_at"),
        sa.Index("ix_contact_requests_purge", "content_purge_at"),
        sa.Index("ix_contact_requests_report", "org_id", "created_at"),
        # Rows with a contribution still to arrive in the aggregates: few at any time.
        sa.Index(
            "ix_contact_requests_arriving",
            "org_id",
            "created_at",
            postgresql_where=ARRIVING,
            sqlite_where=ARRIVING,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'declined', 'completed', 'cancelled', 'expired')",
            name="status_known",
        ),
        sa.CheckConstraint("urgency IN ('low', 'normal', 'high')", name="urgency_known"),
        sa.CheckConstraint(
            "wellbeing IS NULL OR wellbeing BETWEEN 1 AND 5", name="wellbeing_range"
        ),
    )

    requester_ref: str = Field(max_length=64)
    ally_id: uuid.UUID | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("allies.id", ondelete="SET NULL"), nullable=True
        ),
    )
    topic: str = Field(max_length=64)
    urgency: str = Field(max_length=8)
    language: str | None = Field(default=None, max_length=35)
    preferred_channel: str | None = Field(default=None, max_length=16)
    anonymous: bool = Field(default=False)
    status: str = Field(default=RequestStatus.pending, max_length=16)

    # Protected content (P4): sealed with core.crypto, aad = aad_for("contact_requests", id, field).
    message_sealed: str | None = Field(default=None, sa_type=sa.Text)
    contact_detail_sealed: str | None = Field(default=None, sa_type=sa.Text)
    alias_sealed: str | None = Field(default=None, sa_type=sa.Text)

    # Allies who declined, so a re-match never returns to them.
    declined_by: list[str] = json_column()
    decline_reason: str | None = Field(default=None, max_length=32)
    signposted: bool | None = Field(default=None)
    signposted_resource_ids: list[str] = json_column()
    follow_up: bool | None = Field(default=None)
    wellbeing: int | None = Field(default=None)

    expires_at: datetime | None = utc_column(nullable=True)  # pending deadline
    accepted_at: datetime | None = utc_column(nullable=True)
    closed_at: datetime | None = utc_column(nullable=True)
    content_purge_at: datetime | None = utc_column(nullable=True)  # closed_at + retention
    content_purged_at: datetime | None = utc_column(nullable=True)
    erased_at: datetime | None = utc_column(nullable=True)

    # Arrival in the aggregates (docs/aggregates.md): the order in which the creation, the
    # acceptance, the completion and the ally's wellbeing reached the figures, and who was
    # new in which cell then. Written once by aggregates/arrivals.py, never by a request,
    # never shown. They are statistics like topic and status: erasure and purge keep them
    # (changing them would move released figures).
    created_seq: int | None = arrival_seq()
    created_marks: int = arrival_marks()
    accepted_seq: int | None = arrival_seq()
    accepted_marks: int = arrival_marks()
    # Hours from creation to acceptance, to 0.1 h, taken when the acceptance arrived: later
    # day-truncation of the dates (erasure, purge) must not move the median.
    accept_hours: float | None = Field(default=None)
    completed_seq: int | None = arrival_seq()
    completed_marks: int = arrival_marks()
    wellbeing_seq: int | None = arrival_seq()
    wellbeing_marks: int = arrival_marks()


class ContactMessage(SQLModel, table=True):
    __tablename__ = "contact_messages"
    __table_args__ = (sa.Index("ix_contact_messages_thread", "request_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX)
    request_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("contact_requests.id", ondelete="CASCADE"), nullable=False
        )
    )
    author: str = Field(max_length=10)  # "requester" or "ally"
    body_sealed: str = Field(sa_type=sa.Text)  # aad = aad_for("contact_messages", id, "body")
    created_at: datetime = utc_column()


class AccessLogEntry(SQLModel, table=True):
    """P5: each read of protected content by the assigned ally, listable by the requester."""

    __tablename__ = "contact_access_log"
    __table_args__ = (sa.Index("ix_contact_access_log_request", "request_id", "accessed_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    org_id: str = Field(max_length=ORG_ID_MAX)
    request_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("contact_requests.id", ondelete="CASCADE"), nullable=False
        )
    )
    accessor_ally_id: uuid.UUID | None = Field(default=None)
    accessor: str = Field(max_length=100)  # the ally's display name at the time
    action: str = Field(max_length=32)
    accessed_at: datetime = utc_column()


class RequesterLoad(SQLModel, table=True):
    """Open requests per requester: the cap is a conditional UPDATE on this row."""

    __tablename__ = "requester_loads"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    requester_ref: str = Field(max_length=64, primary_key=True)
    open_requests: int = Field(default=0)


class ContactRequestKey(SQLModel, table=True):
    """The request's own data key (crypto-shredding; core/privacy/crypto.py ``DataKey``).

    Message, contact detail, alias and thread bodies of the request are sealed with it; the
    key is stored sealed under the configured data keys (``aad_for("contact_request_keys",
    request id, "key")``). Erasure and the retention purge delete this row, after which no
    copy of those ciphertexts (a dead PostgreSQL tuple, a WAL segment, a backup) opens with
    the configured keys alone. A row of its own, not a column of the request: updating a
    column leaves the old version, key and ciphertext side by side, in a dead tuple.
    """

    __tablename__ = "contact_request_keys"

    request_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid,
            sa.ForeignKey("contact_requests.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    org_id: str = Field(max_length=ORG_ID_MAX)
    key_sealed: str = Field(sa_type=sa.Text, nullable=False)
