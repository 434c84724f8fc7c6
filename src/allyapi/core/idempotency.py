"""``Idempotency-Key`` for creating POSTs, shared by every process through the database (SPEC §4)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from allyapi.core.models import ORG_ID_MAX, utc_column


class IdempotencyKey(SQLModel, table=True):
    """One key of one caller.

    ``caller_ref`` is subject_ref(key, "idem", org, sub): not joinable with requester_ref.
    The response is replayed by re-reading ``resource_id``, so no plaintext is kept here.
    """

    __tablename__ = "idempotency_keys"

    org_id: str = Field(max_length=ORG_ID_MAX, primary_key=True)
    caller_ref: str = Field(max_length=64, primary_key=True)
    key: str = Field(max_length=200, primary_key=True)
    operation: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    resource_id: uuid.UUID | None = Field(default=None)
    status_code: int | None = Field(default=None)
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column(index=True)
