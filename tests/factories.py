"""Rows written straight to the database, shared by every test folder: allies (the one
direct-to-database ally builder, ``add_ally``), requests for time-driven tests (the API has no
clock knob), requester loads, and the environment of a CLI or server process."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally, AllyStatus, PausedBy
from allyapi.contact_requests.models import (
    AccessLogEntry,
    ContactMessage,
    ContactRequest,
    RequesterLoad,
    RequestStatus,
)
from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.db.models import utcnow
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from tests.helpers import ORG


async def add_ally(
    session: AsyncSession, subject_ref: str, *, org: str = ORG, display_name: str, **fields: Any
) -> Ally:
    """The one builder that writes an ally row straight to the database (committed); every
    test helper that needs an ally without the API ends here."""
    ally = Ally(org_id=org, subject_ref=subject_ref, display_name=display_name, **fields)
    session.add(ally)
    await session.commit()
    return ally


async def make_ally(
    session: AsyncSession,
    settings: Settings,
    sub: str | None = None,
    *,
    org: str = ORG,
    name: str | None = None,
    topics: list[str] | None = None,
    languages: list[str] | None = None,
    department: str | None = None,
    capacity: int = 3,
    open_requests: int = 0,
    accepting: bool = True,
    status: str = AllyStatus.active,
) -> Ally:
    """An ally (approved, accepting, listed unless told otherwise, or when the org requires a
    course) for the person ``sub`` (a fresh person when None)."""
    person = sub or f"ally-{uuid.uuid4().hex[:8]}"
    return await add_ally(
        session,
        subject_ref(settings.pseudonym_key_bytes, "ally", dev_subject(settings, org, person)),
        org=org,
        display_name=name or "Robin Ally",  # never the sub: privacy tests look for it
        languages=languages if languages is not None else ["en"],
        topics=topics if topics is not None else ["stress"],
        department=department,
        department_key=department.lower() if department else None,
        status=status,
        paused_by=PausedBy.coordinator if status == AllyStatus.paused else None,
        accepting=accepting,
        max_open_requests=capacity,
        open_requests=open_requests,
        approved_at=utcnow(),
    )


async def set_requester_load(
    session: AsyncSession, settings: Settings, sub: str, n: int, org: str = ORG
) -> str:
    ref = requester_ref(settings.pseudonym_key_bytes, dev_subject(settings, org, sub))
    session.add(RequesterLoad(org_id=org, requester_ref=ref, open_requests=n))
    await session.commit()
    return ref


async def make_request(
    session: AsyncSession,
    settings: Settings,
    cipher: Cipher,
    *,
    ally: Ally | None,
    sub: str = "emp-1",
    status: RequestStatus = RequestStatus.pending,
    expires_at: datetime | None = None,
    closed_at: datetime | None = None,
    content_purge_at: datetime | None = None,
    message: str = "I am not coping",
    thread: tuple[str, ...] = (),
) -> ContactRequest:
    """A request with sealed content, optional thread messages and one access-log entry."""
    now = utcnow()
    request = ContactRequest(
        org_id=ally.org_id if ally else ORG,
        requester_ref=requester_ref(settings.pseudonym_key_bytes, dev_subject(settings, ORG, sub)),
        ally_id=ally.id if ally else None,
        topic="stress",
        urgency="normal",
        language="en",
        status=status,
        expires_at=expires_at or now + timedelta(hours=settings.response_window_hours),
        closed_at=closed_at,
        content_purge_at=content_purge_at,
    )
    fields = {"message": message, "contact_detail": "+44 7700 900123", "alias": "Sam"}
    for name, value in fields.items():
        setattr(
            request,
            f"{name}_sealed",
            cipher.seal(value, aad_for("contact_requests", request.id, name)),
        )
    session.add(request)
    await session.flush()
    for index, body in enumerate(thread):
        item = ContactMessage(
            org_id=request.org_id,
            request_id=request.id,
            author="requester" if index % 2 == 0 else "ally",
            body_sealed="",
        )
        item.body_sealed = cipher.seal(body, aad_for("contact_messages", item.id, "body"))
        session.add(item)
    if ally is not None:
        session.add(
            AccessLogEntry(
                org_id=request.org_id,
                request_id=request.id,
                accessor_ally_id=ally.id,
                accessor=ally.display_name,
                action="read",
            )
        )
    await session.commit()
    return request


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a CLI or server process on the test database, with the same secrets
    as the test settings (so tokens minted by the tests verify there), background jobs and
    webhook deliveries disabled."""
    assert settings.jwt_secret
    assert settings.pseudonym_key
    assert settings.data_keys
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "ALLYAPI_ENV": "test",
        "ALLYAPI_DATA_DIR": str(settings.data_dir),
        "ALLYAPI_DATABASE_URL": settings.effective_database_url,
        "ALLYAPI_JWT_SECRET": settings.jwt_secret,
        "ALLYAPI_PSEUDONYM_KEY": settings.pseudonym_key,
        "ALLYAPI_DATA_KEYS": settings.data_keys,
        "ALLYAPI_JOBS_INTERVAL_SECONDS": "0",
        # A server left running on the test database would deliver other tests' webhooks.
        "ALLYAPI_WEBHOOK_INTERVAL_SECONDS": "0",
        **extra,
    }
