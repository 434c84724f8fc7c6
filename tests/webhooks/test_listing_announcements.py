"""``ally.listed`` / ``ally.unlisted``: exactly one event per flip of *listed*, whatever flips it,
and none for a change that leaves it as it was (allies/announcements.py)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.announcements import announce_due
from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.training.models import TrainingRecord
from tests.allies.factories import active_ally, employee, required_course, volunteer
from tests.helpers import TokenFactory
from tests.webhooks.factories import deliveries, subscribe

LISTING = ["ally.listed", "ally.unlisted"]


async def events(session: AsyncSession) -> list[tuple[str, str]]:
    """(event type, ally id) of every delivery so far, in order."""
    return [
        (row.event_type, json.loads(row.body)["data"]["ally_id"])
        for row in await deliveries(session)
    ]


async def record(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    ally_id: str,
    course: uuid.UUID,
    completed_on: date | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/v1/training-records",
        json={
            "ally_id": ally_id,
            "course_id": str(course),
            "completed_on": (completed_on or today() - timedelta(days=10)).isoformat(),
        },
        headers=tokens.coordinator,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def course_with_validity(
    client: httpx.AsyncClient, tokens: TokenFactory, months: int = 12
) -> uuid.UUID:
    response = await client.post(
        "/v1/training-courses",
        json={
            "name": f"Course {uuid.uuid4().hex[:6]}",
            "validity_months": months,
            "required": True,
        },
        headers=tokens.coordinator,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def test_approval_before_training_then_training_recorded(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    course = await required_course(session)
    await subscribe(client, tokens.integration, events=LISTING)
    ally = await volunteer(client, tokens, "ally-1")
    approved = await client.post(f"/v1/allies/{ally['id']}/approve", headers=tokens.coordinator)
    assert approved.json()["listed"] is False
    assert await events(session) == []  # approved, not listed yet: no flip

    await record(client, tokens, ally["id"], course)
    assert await events(session) == [("ally.listed", ally["id"])]
    await record(client, tokens, ally["id"], course)  # a second current record: no flip
    assert await announce_due(database) == 0
    assert await events(session) == [("ally.listed", ally["id"])]


async def test_training_expiry_by_time_then_a_renewed_course(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    await subscribe(client, tokens.integration, events=LISTING)
    ally = await active_ally(client, tokens, "ally-2")
    course = await course_with_validity(client, tokens, months=12)  # everyone drops out
    assert await events(session) == [("ally.listed", ally["id"]), ("ally.unlisted", ally["id"])]
    completed = today() - timedelta(days=300)
    first = await record(client, tokens, ally["id"], course, completed_on=completed)
    expires = date.fromisoformat(first["expires_on"])
    assert await announce_due(database, on=expires - timedelta(days=1)) == 0
    assert [kind for kind, _ in await events(session)][-1] == "ally.listed"

    # The calendar alone unlists: the periodic check announces it once.
    assert await announce_due(database, on=expires) == 1
    assert await announce_due(database, on=expires) == 0
    assert await announce_due(database, on=expires + timedelta(days=5)) == 0
    assert [kind for kind, _ in await events(session)][-2:] == ["ally.listed", "ally.unlisted"]

    # A renewed course (recorded while the old one has lapsed) lists the ally again.
    async with database.sessionmaker() as db, db.begin():
        await db.execute(sa.update(TrainingRecord).values(expires_on=today() - timedelta(days=1)))
    await record(client, tokens, ally["id"], course)
    kinds = [kind for kind, _ in await events(session)]
    assert kinds == ["ally.listed", "ally.unlisted", "ally.listed", "ally.unlisted", "ally.listed"]


async def test_pause_resume_suspension_and_retire(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "ally-3")
    await subscribe(client, tokens.integration, events=LISTING)
    own = employee(tokens, "ally-3")
    base = f"/v1/allies/{ally['id']}"
    assert (await client.post(f"{base}/pause", headers=own)).status_code == 200
    # A coordinator turning the ally's own pause into a suspension: still unlisted.
    assert (await client.post(f"{base}/pause", headers=tokens.coordinator)).status_code == 200
    assert (await client.post(f"{base}/resume", headers=tokens.coordinator)).status_code == 200
    assert (await client.post(f"{base}/pause", headers=tokens.coordinator)).status_code == 200
    assert (await client.post(f"{base}/retire", headers=tokens.coordinator)).status_code == 200
    assert [kind for kind, _ in await events(session)] == [
        "ally.unlisted",
        "ally.listed",
        "ally.unlisted",
    ]


async def test_retiring_a_paused_ally_announces_nothing_more(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "ally-4")
    await subscribe(client, tokens.integration, events=LISTING)
    base = f"/v1/allies/{ally['id']}"
    assert (await client.post(f"{base}/retire", headers=tokens.coordinator)).status_code == 200
    assert await events(session) == [("ally.unlisted", ally["id"])]


async def test_roster_sync_leaver_once(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    leaver = await active_ally(client, tokens, "ally-5")
    stayer = await active_ally(client, tokens, "ally-6")
    await subscribe(client, tokens.integration, events=LISTING)
    for _ in range(2):
        response = await client.post(
            "/v1/allies/roster-sync", json={"subs": ["ally-6"]}, headers=tokens.integration
        )
        assert response.status_code == 200, response.text
    assert await events(session) == [("ally.unlisted", leaver["id"])]
    assert stayer["id"] != leaver["id"]


async def test_profile_change_of_accepting_flips_and_other_fields_do_not(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await active_ally(client, tokens, "ally-7")
    await subscribe(client, tokens.integration, events=LISTING)
    own = employee(tokens, "ally-7")
    for change in (
        {"bio": "Still here."},
        {"accepting": False},
        {"accepting": False},
        {"bio": "Back soon."},
        {"accepting": True},
    ):
        response = await client.patch("/v1/me/ally-profile", json=change, headers=own)
        assert response.status_code == 200, response.text
    assert [kind for kind, _ in await events(session)] == ["ally.unlisted", "ally.listed"]


async def test_record_deleted_verified_batch_and_course_no_longer_required(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "ally-8")
    course = await course_with_validity(client, tokens)
    await subscribe(client, tokens.integration, events=LISTING)
    made = await record(client, tokens, ally["id"], course)  # listed
    deleted = await client.delete(f"/v1/training-records/{made['id']}", headers=tokens.coordinator)
    assert deleted.status_code == 204  # unlisted
    # An ally's own (unverified) record lists nobody; the coordinator's verification does.
    own = await client.post(
        "/v1/training-records",
        json={"course_id": str(course), "completed_on": today().isoformat()},
        headers=employee(tokens, "ally-8"),
    )
    assert own.status_code == 201, own.text
    assert len(await events(session)) == 2
    verify = f"/v1/training-records/{own.json()['id']}/verify"
    for _ in range(2):  # verifying twice: one flip
        assert (await client.post(verify, headers=tokens.coordinator)).status_code == 200
    # The course stops being required: nothing flips for an ally who holds it anyway.
    patched = await client.patch(
        f"/v1/training-courses/{course}", json={"required": False}, headers=tokens.coordinator
    )
    assert patched.status_code == 200
    assert [kind for kind, _ in await events(session)] == [
        "ally.listed",
        "ally.unlisted",
        "ally.listed",
    ]


async def test_batch_upsert_lists_once(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "ally-9")
    course = await course_with_validity(client, tokens)
    await subscribe(client, tokens.integration, events=LISTING)
    row = {
        "external_id": "lms-1",
        "ally_id": ally["id"],
        "course_id": str(course),
        "completed_on": today().isoformat(),
        "verified": True,
    }
    for _ in range(2):
        response = await client.post(
            "/v1/training-records/batch", json={"rows": [row]}, headers=tokens.integration
        )
        assert response.status_code == 200, response.text
    assert await events(session) == [("ally.listed", ally["id"])]
