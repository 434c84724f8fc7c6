"""Small builders for ally tests: profiles through the API, training rows directly."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import today
from allyapi.training.models import TrainingCourse, TrainingRecord
from tests.helpers import ORG, TokenFactory

PROFILE: dict[str, Any] = {
    "display_name": "Alex Ally",
    "pronouns": "they/them",
    "job_title": "Engineer",
    "department": "Engineering",
    "location": "London",
    "timezone": "Europe/London",
    "languages": ["en-GB", "fr"],
    "topics": ["stress", "burnout"],
    "bio": "Happy to listen.",
    "contact_channels": [{"kind": "chat", "detail": "@alex"}],
    "availability": [{"weekday": 1, "start": "09:00", "end": "12:30"}],
}


def employee(tokens: TokenFactory, sub: str, **claims: Any) -> dict[str, str]:
    return tokens.headers(sub, "employee", **claims)


async def volunteer(
    client: httpx.AsyncClient, tokens: TokenFactory, sub: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/allies", json={**PROFILE, **fields}, headers=employee(tokens, sub)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def active_ally(
    client: httpx.AsyncClient, tokens: TokenFactory, sub: str, **fields: Any
) -> dict[str, Any]:
    """An approved ally; listed while the org has no required course."""
    created = await volunteer(client, tokens, sub, **fields)
    response = await client.post(f"/v1/allies/{created['id']}/approve", headers=tokens.coordinator)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def required_course(
    session: AsyncSession, *, org: str = ORG, required: bool = True, name: str | None = None
) -> uuid.UUID:
    course = TrainingCourse(
        org_id=org, name=name or f"Course {uuid.uuid4().hex[:6]}", required=required
    )
    session.add(course)
    await session.commit()
    return course.id


async def training_record(
    session: AsyncSession,
    ally_id: str,
    course_id: uuid.UUID,
    *,
    verified: bool = True,
    expires_on: date | None = None,
    org: str = ORG,
) -> TrainingRecord:
    record = TrainingRecord(
        org_id=org,
        ally_id=uuid.UUID(ally_id),
        course_id=course_id,
        completed_on=today() - timedelta(days=30),
        expires_on=expires_on,
        verified=verified,
    )
    session.add(record)
    await session.commit()
    return record
