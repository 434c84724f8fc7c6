"""Small builders for training tests: allies directly in the table, courses through the API."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally, AllyStatus, PausedBy
from allyapi.training.models import TrainingCourse, TrainingRecord
from tests.factories import add_ally
from tests.helpers import ORG, TokenFactory


async def make_ally(
    session: AsyncSession,
    tokens: TokenFactory,
    sub: str,
    *,
    org: str = ORG,
    display_name: str | None = None,
    status: AllyStatus = AllyStatus.active,
    accepting: bool = True,
) -> Ally:
    return await add_ally(
        session,
        tokens.ally_ref(sub, org),
        org=org,
        display_name=display_name or f"Ally {sub}",
        status=status,
        paused_by=PausedBy.coordinator if status == AllyStatus.paused else None,
        accepting=accepting,
    )


async def make_course(
    session: AsyncSession,
    name: str,
    *,
    org: str = ORG,
    validity_months: int | None = 24,
    required: bool = True,
) -> TrainingCourse:
    course = TrainingCourse(
        org_id=org, name=name, validity_months=validity_months, required=required
    )
    session.add(course)
    await session.commit()
    return course


async def make_record(
    session: AsyncSession,
    ally: Ally,
    course: TrainingCourse,
    *,
    completed_on: date,
    expires_on: date | None,
    verified: bool = True,
    external_id: str | None = None,
) -> TrainingRecord:
    record = TrainingRecord(
        org_id=ally.org_id,
        ally_id=ally.id,
        course_id=course.id,
        completed_on=completed_on,
        expires_on=expires_on,
        verified=verified,
        external_id=external_id,
    )
    session.add(record)
    await session.commit()
    return record


def ally_headers(tokens: TokenFactory, sub: str, org: str = ORG) -> dict[str, str]:
    """An ally calls with an ordinary employee token; the profile makes them an ally."""
    return tokens.headers(sub, "employee", org=org)


async def post_course(
    client: httpx.AsyncClient, tokens: TokenFactory, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Mental Health First Aid", "validity_months": 36, "required": True, **fields}
    response = await client.post("/v1/training-courses", json=body, headers=tokens.coordinator)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
