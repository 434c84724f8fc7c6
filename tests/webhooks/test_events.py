"""Events are written with the change that causes them, and carry no requester data."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import today
from allyapi.core.db.session import Database
from allyapi.jobs.training_expiring import emit_training_expiring
from allyapi.webhooks import events
from allyapi.webhooks.outbox import ALLOWED_DATA, enqueue
from tests.allies.factories import active_ally, required_course, training_record, volunteer
from tests.helpers import ORG, OTHER_ORG, TokenFactory
from tests.webhooks.factories import deliveries, subscribe

# Anything that could identify or describe a requester (docs/privacy.md, P1, P3): none may
# appear in a payload.
REQUESTER_KEYS = {"requester_ref", "message", "sub", "contact_detail", "alias", "name", "topic"}


def types(rows: list[object]) -> list[str]:
    return [row.event_type for row in rows]  # type: ignore[attr-defined]


async def test_nobody_subscribed_means_no_rows(session: AsyncSession) -> None:
    assert await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()}) is None
    await session.commit()
    assert await deliveries(session) == []


async def test_one_delivery_per_interested_subscription_with_one_event_id(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await subscribe(client, tokens.integration, events=["ally.listed"])
    await subscribe(client, tokens.coordinator, events=["ally.listed", "ally.unlisted"])
    await subscribe(client, tokens.coordinator, events=["training.expiring"])
    await subscribe(client, tokens.other_org_coordinator, events=["ally.listed"])
    event_id = await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    rows = await deliveries(session)
    assert len(rows) == 2
    assert {row.event_id for row in rows} == {event_id}
    assert {row.org_id for row in rows} == {ORG}
    assert rows[0].body == rows[1].body


async def test_an_event_rolls_back_with_its_change(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await subscribe(client, tokens.integration)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.rollback()
    assert await deliveries(session) == []


async def test_ally_transitions_emit_listed_and_unlisted(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await subscribe(client, tokens.integration, events=["ally.listed", "ally.unlisted"])
    ally = await active_ally(client, tokens, "ally-1")
    for action in ("pause", "resume", "retire"):
        response = await client.post(
            f"/v1/allies/{ally['id']}/{action}", headers=tokens.coordinator
        )
        assert response.status_code == 200, response.text
    rows = await deliveries(session)
    assert types(rows) == ["ally.listed", "ally.unlisted", "ally.listed", "ally.unlisted"]
    assert {json.loads(row.body)["data"]["ally_id"] for row in rows} == {ally["id"]}


async def test_an_approved_ally_missing_training_is_not_announced(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await required_course(session)
    await subscribe(client, tokens.integration, events=["ally.listed"])
    ally = await volunteer(client, tokens, "ally-2")
    response = await client.post(f"/v1/allies/{ally['id']}/approve", headers=tokens.coordinator)
    assert response.status_code == 200
    assert response.json()["listed"] is False
    assert await deliveries(session) == []


async def test_a_refused_transition_emits_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await active_ally(client, tokens, "ally-3")
    await subscribe(client, tokens.integration)
    response = await client.post(f"/v1/allies/{ally['id']}/resume", headers=tokens.coordinator)
    assert response.status_code == 409
    assert await deliveries(session) == []


async def test_training_expiring_is_emitted_once_per_record_and_window(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    await subscribe(client, tokens.integration, events=["training.expiring"])
    ally = await active_ally(client, tokens, "ally-4")
    course = await required_course(session, required=False)
    soon = await training_record(session, ally["id"], course, expires_on=today() + timedelta(10))
    far = await required_course(session, required=False)
    await training_record(session, ally["id"], far, expires_on=today() + timedelta(90))
    renewed = await required_course(session, required=False)
    await training_record(session, ally["id"], renewed, expires_on=today() + timedelta(5))
    await training_record(session, ally["id"], renewed, expires_on=today() + timedelta(400))
    unverified = await required_course(session, required=False)
    await training_record(
        session, ally["id"], unverified, verified=False, expires_on=today() + timedelta(3)
    )

    assert await emit_training_expiring(database) == 1
    assert await emit_training_expiring(database) == 0  # the marker holds
    [row] = await deliveries(session)
    assert row.event_type == "training.expiring"
    assert json.loads(row.body)["data"] == {
        "training_record_id": str(soon.id),
        "ally_id": ally["id"],
        "course_id": str(course),
        "expires_on": (today() + timedelta(10)).isoformat(),
    }


async def test_training_expiring_skips_orgs_without_subscribers(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, database: Database
) -> None:
    await subscribe(client, tokens.other_org_coordinator, events=["training.expiring"])
    ally = await active_ally(client, tokens, "ally-5")
    course = await required_course(session, required=False)
    await training_record(session, ally["id"], course, expires_on=today() + timedelta(3))
    assert await emit_training_expiring(database) == 0
    assert await deliveries(session) == []
    assert OTHER_ORG != ORG


async def test_contact_request_events_carry_ids_only(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await subscribe(client, tokens.integration)
    request_id, ally_id = uuid.uuid4(), uuid.uuid4()
    await events.contact_request_assigned(session, ORG, request_id, ally_id)
    await events.contact_request_expired(session, ORG, request_id, ally_id)
    await session.commit()
    rows = await deliveries(session)
    assert types(rows) == ["contact_request.assigned", "contact_request.expired"]
    for row in rows:
        assert json.loads(row.body)["data"] == {
            "contact_request_id": str(request_id),
            "ally_id": str(ally_id),
        }


@pytest.mark.parametrize("event_type", sorted(ALLOWED_DATA))
async def test_payloads_cannot_carry_requester_data(session: AsyncSession, event_type: str) -> None:
    """The outbox refuses any key outside the event's allow-list, and none of those
    allow-lists names anything about a requester."""
    assert not ALLOWED_DATA[event_type] & REQUESTER_KEYS
    for key in REQUESTER_KEYS:
        with pytest.raises(ValueError, match="may not carry"):
            await enqueue(session, ORG, event_type, {key: "x"})
    with pytest.raises(ValueError, match="unknown event type"):
        await enqueue(session, ORG, "requester.created", {})
