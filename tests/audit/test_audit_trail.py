"""The programme's audit trail: every coordinator and integration action, in the same
transaction; never anything of a contact request, a requester, feedback or an access log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.audit.models import AuditEvent
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.jobs.contact_requests import run_all_jobs
from allyapi.webhooks.models import DeliveryStatus
from allyapi.webhooks.outbox import enqueue
from tests.allies.factories import active_ally, employee, required_course, volunteer
from tests.contact_requests.factories import act, create, make_ally, person
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.webhooks.factories import PROGRAMME_EVENTS, deliveries, subscribe

PATH = "/v1/audit-events"


async def trail(
    client: httpx.AsyncClient, tokens: TokenFactory, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(PATH, params=params, headers=tokens.coordinator)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def count(session: AsyncSession) -> int:
    await session.rollback()
    return int(
        (await session.execute(sa.select(sa.func.count()).select_from(AuditEvent))).scalar_one()
    )


def brief(event: dict[str, Any]) -> tuple[str, str, str | None, list[str]]:
    return event["action"], event["target_type"], event["target_id"], event["changed"]


# Allies ------------------------------------------------------------------------------------


async def test_approve_pause_resume_retire_are_recorded(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "ally-1")
    for action in ("pause", "resume", "retire"):
        response = await client.post(
            f"/v1/allies/{ally['id']}/{action}", headers=tokens.coordinator
        )
        assert response.status_code == 200, response.text
    events = await trail(client, tokens)
    assert [brief(e) for e in events] == [
        ("ally.retire", "ally", ally["id"], ["status"]),
        ("ally.resume", "ally", ally["id"], ["paused_by", "status"]),
        ("ally.pause", "ally", ally["id"], ["paused_by", "status"]),
        ("ally.approve", "ally", ally["id"], ["status"]),
    ]
    actor = events[0]["actor"]
    assert actor["kind"] == "staff"
    assert actor["id"] != "coord-1"
    assert len(actor["id"]) == 64
    assert {e["actor"]["id"] for e in events} == {actor["id"]}


async def test_an_allys_own_pause_and_resume_are_not_programme_actions(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    ally = await active_ally(client, tokens, "ally-1")
    for action in ("pause", "resume"):
        response = await client.post(
            f"/v1/allies/{ally['id']}/{action}", headers=employee(tokens, "ally-1")
        )
        assert response.status_code == 200, response.text
    assert [e["action"] for e in await trail(client, tokens)] == ["ally.approve"]


async def test_roster_sync_records_each_leaver_by_the_integration_client(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    stays = await active_ally(client, tokens, "stays")
    leaves = await active_ally(client, tokens, "leaves")
    response = await client.post(
        "/v1/allies/roster-sync",
        json={"subs": ["stays"]},
        headers=tokens.headers("hris-1", "integration", name="HRIS feed"),
    )
    assert response.status_code == 200, response.text
    [event] = await trail(client, tokens, action="ally.roster_retire")
    assert brief(event) == ("ally.roster_retire", "ally", leaves["id"], ["status"])
    assert event["actor"] == {"kind": "integration", "id": "hris-1", "display_name": "HRIS feed"}
    assert stays["id"] not in [e["target_id"] for e in await trail(client, tokens)][:1]


# Training ----------------------------------------------------------------------------------


async def test_courses_and_records_are_recorded(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    coordinator = tokens.headers("coord-1", "employee", "coordinator", name="Casey Coordinator")
    course = await client.post(
        "/v1/training-courses",
        json={"name": "Listening", "required": False},
        headers={**coordinator, "Idempotency-Key": "course-1"},
    )
    assert course.status_code == 201, course.text
    replay = await client.post(
        "/v1/training-courses",
        json={"name": "Listening", "required": False},
        headers={**coordinator, "Idempotency-Key": "course-1"},
    )
    assert replay.status_code == 201
    course_id = course.json()["id"]
    patched = await client.patch(
        f"/v1/training-courses/{course_id}", json={"validity_months": 24}, headers=coordinator
    )
    assert patched.status_code == 200, patched.text
    ally = await volunteer(client, tokens, "ally-1")
    # The ally's own report is theirs, not the programme's; the coordinator's is.
    own = await client.post(
        "/v1/training-records",
        json={"course_id": course_id, "completed_on": "2026-01-15"},
        headers=employee(tokens, "ally-1"),
    )
    assert own.status_code == 201, own.text
    verified = await client.post(
        f"/v1/training-records/{own.json()['id']}/verify", headers=coordinator
    )
    assert verified.status_code == 200, verified.text
    recorded = await client.post(
        "/v1/training-records",
        json={"course_id": course_id, "completed_on": "2026-02-01", "ally_id": ally["id"]},
        headers=coordinator,
    )
    assert recorded.status_code == 201, recorded.text
    deleted = await client.delete(
        f"/v1/training-records/{recorded.json()['id']}", headers=coordinator
    )
    assert deleted.status_code == 204, deleted.text
    events = await trail(client, tokens)
    assert [brief(e)[:3] for e in events] == [
        ("training_record.delete", "training_record", recorded.json()["id"]),
        ("training_record.create", "training_record", recorded.json()["id"]),
        ("training_record.verify", "training_record", own.json()["id"]),
        ("training_course.update", "training_course", course_id),
        ("training_course.create", "training_course", course_id),
    ]
    assert events[3]["changed"] == ["validity_months"]
    assert events[4]["changed"] == ["name", "required"]
    assert {e["actor"]["display_name"] for e in events} == {"Casey Coordinator"}


async def test_batch_upserts_record_each_written_row(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    course_id = await required_course(session, required=False)
    await volunteer(client, tokens, "ally-1")
    rows = [
        {"external_id": "lms-1", "sub": "ally-1", "course_id": str(course_id),
         "completed_on": "2026-01-15"},
        {"external_id": "lms-2", "sub": "nobody", "course_id": str(course_id),
         "completed_on": "2026-01-15"},
    ]  # fmt: skip
    for _ in range(2):  # the second time the row is unchanged: nothing more to record
        response = await client.post(
            "/v1/training-records/batch", json={"rows": rows}, headers=tokens.integration
        )
        assert response.status_code == 200, response.text
    written = response.json()["results"][0]["id"]
    events = await trail(client, tokens)
    assert [brief(e)[:3] for e in events] == [
        ("training_record.batch_upsert", "training_record", written)
    ]
    assert events[0]["actor"]["kind"] == "integration"


# Resources, webhooks, topics ---------------------------------------------------------------


async def test_resources_are_recorded(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await client.post(
        "/v1/resources",
        json={"name": "Helpline", "category": "crisis", "phone": "116 123"},
        headers=tokens.coordinator,
    )
    assert created.status_code == 201, created.text
    resource_id = created.json()["id"]
    changed = await client.patch(
        f"/v1/resources/{resource_id}", json={"hours": "24/7"}, headers=tokens.coordinator
    )
    assert changed.status_code == 200
    removed = await client.delete(f"/v1/resources/{resource_id}", headers=tokens.coordinator)
    assert removed.status_code == 204
    assert [brief(e) for e in await trail(client, tokens)] == [
        ("resource.delete", "resource", resource_id, []),
        ("resource.update", "resource", resource_id, ["hours"]),
        ("resource.create", "resource", resource_id, ["category", "name", "phone"]),
    ]


async def test_webhooks_are_recorded(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    created = await subscribe(client, tokens.coordinator, events=PROGRAMME_EVENTS)
    await enqueue(session, ORG, "ally.listed", {"ally_id": uuid.uuid4()})
    await session.commit()
    [row] = await deliveries(session)
    row.status, row.next_attempt_at = DeliveryStatus.failed, None
    await session.commit()
    retried = await client.post(
        f"/v1/webhooks/{created['id']}/deliveries/{row.id}/retry", headers=tokens.coordinator
    )
    assert retried.status_code == 202, retried.text
    removed = await client.delete(f"/v1/webhooks/{created['id']}", headers=tokens.coordinator)
    assert removed.status_code == 204
    assert [brief(e) for e in await trail(client, tokens)] == [
        ("webhook.delete", "webhook", created["id"], []),
        ("webhook_delivery.retry", "webhook_delivery", str(row.id), ["status"]),
        ("webhook.create", "webhook", created["id"], ["events", "url"]),
    ]


async def test_topics_are_recorded(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    headers = {**tokens.coordinator, "Idempotency-Key": "topic-1"}
    created = await client.post("/v1/topics", json={"key": "menopause"}, headers=headers)
    assert created.status_code == 201, created.text
    again = await client.post("/v1/topics", json={"key": "menopause"}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    topic = created.json()
    changed = await client.patch(
        f"/v1/topics/{topic['id']}", json={"label": "Menopause"}, headers=tokens.coordinator
    )
    assert changed.status_code == 200, changed.text
    removed = await client.delete(f"/v1/topics/{topic['id']}", headers=tokens.coordinator)
    assert removed.status_code == 204
    assert [brief(e) for e in await trail(client, tokens)] == [
        ("topic.delete", "topic", topic["id"], []),
        ("topic.update", "topic", topic["id"], ["label"]),
        ("topic.create", "topic", topic["id"], ["key"]),
    ]


# What is never recorded ---------------------------------------------------------------------


async def test_the_whole_contact_request_lifecycle_adds_no_audit_event(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    ally = await make_ally(session, settings, "ally-1")
    other = await make_ally(session, settings, "ally-2")
    assert await count(session) == 0
    asker = person(tokens, "asker")
    request = await create(client, asker, ally_id=str(ally.id), alias="Sam", contact_detail="x")
    rid = request["id"]
    as_ally = person(tokens, "ally-1")
    assert (await client.get(f"/v1/contact-requests/{rid}", headers=as_ally)).status_code == 200
    assert (await act(client, rid, "accept", as_ally)).status_code == 200
    for who in (asker, as_ally):
        posted = await client.post(
            f"/v1/contact-requests/{rid}/messages", json={"body": "Hello"}, headers=who
        )
        assert posted.status_code == 201, posted.text
        assert (
            await client.get(f"/v1/contact-requests/{rid}/messages", headers=who)
        ).status_code == 200
    log = await client.get(f"/v1/contact-requests/{rid}/access-log", headers=asker)
    assert log.status_code == 200
    assert log.json()["items"]
    done = await act(client, rid, "complete", as_ally, {"signposted": True, "wellbeing": 4})
    assert done.status_code == 200, done.text
    feedback = await client.post(
        f"/v1/contact-requests/{rid}/feedback",
        json={"rating": 5, "felt_heard": True, "would_recommend": True, "comment": "Thanks"},
        headers=asker,
    )
    assert feedback.status_code == 201, feedback.text
    programme = await client.post(
        "/v1/feedback", json={"category": "other", "rating": 4}, headers=asker
    )
    assert programme.status_code in (201, 202), programme.text
    # A second request: declined (re-matched), cancelled, then erased.
    second = await create(client, asker, ally_id=str(ally.id))
    declined = await act(client, second["id"], "decline", as_ally, {"reason": "at_capacity"})
    assert declined.status_code in (200, 204), declined.text
    assert (await act(client, second["id"], "cancel", asker)).status_code == 200
    erased = await client.delete(f"/v1/contact-requests/{second['id']}", headers=asker)
    assert erased.status_code == 204
    assert (await client.get("/v1/me/export", headers=asker)).status_code == 200
    assert other.id != ally.id
    await run_all_jobs(Database(settings), settings, now=utcnow() + timedelta(days=400))
    assert await count(session) == 0
    assert await trail(client, tokens) == []


# Reading the trail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("none", 401), ("employee", 403), ("analyst", 403), ("integration", 403)],
)
async def test_only_coordinators_read_the_trail(
    client: httpx.AsyncClient, tokens: TokenFactory, who: str, status: int
) -> None:
    headers = {} if who == "none" else getattr(tokens, who)
    assert_problem(await client.get(PATH, headers=headers), status)


async def test_another_orgs_coordinator_sees_nothing_of_ours(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await active_ally(client, tokens, "ally-1")
    assert len(await trail(client, tokens)) == 1
    theirs = await client.get(PATH, headers=tokens.other_org_coordinator)
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []


async def test_filters_and_keyset_pages(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    allies = [await volunteer(client, tokens, f"ally-{i}") for i in range(5)]
    other_coordinator = tokens.headers("coord-2", "employee", "coordinator")
    for i, ally in enumerate(allies):
        headers = tokens.coordinator if i % 2 == 0 else other_coordinator
        response = await client.post(f"/v1/allies/{ally['id']}/approve", headers=headers)
        assert response.status_code == 200
    response = await client.post(f"/v1/allies/{allies[0]['id']}/retire", headers=tokens.coordinator)
    assert response.status_code == 200
    everything = await trail(client, tokens)
    assert len(everything) == 6
    # Pages of two, newest first, together exactly the whole trail.
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(PATH, params=params, headers=tokens.coordinator)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    mine = everything[0]["actor"]["id"]
    assert len(await trail(client, tokens, actor=mine)) == 4
    assert len(await trail(client, tokens, action="ally.approve")) == 5
    by_target = await trail(client, tokens, target_type="ally", target_id=allies[0]["id"])
    assert [e["action"] for e in by_target] == ["ally.retire", "ally.approve"]
    assert await trail(client, tokens, target_type="resource") == []
    # Date range: [since, until).
    newest = everything[0]["occurred_at"]
    assert await trail(client, tokens, until=newest, action="ally.retire") == []
    assert len(await trail(client, tokens, since=newest, action="ally.retire")) == 1
    assert (
        await trail(client, tokens, since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00Z")
        == []
    )
    # A cursor belongs to its filters.
    page = (await client.get(PATH, params={"limit": "1"}, headers=tokens.coordinator)).json()
    other = await client.get(
        PATH, params={"limit": "1", "cursor": page["next_cursor"], "action": "ally.approve"},
        headers=tokens.coordinator,
    )  # fmt: skip
    assert_problem(other, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"action": "contact_request.read"},
        {"target_type": "contact_request"},
        {"target_id": "not-a-uuid"},
        {"since": "2026-01-01T00:00:00"},
        {"since": "0001-01-01T00:00:00+01:00"},
        {"until": "9999-12-31T23:59:59-01:00"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"actor": ""},
        {"actor": "x" * 257},
    ],
)
async def test_bad_filters_are_422(
    client: httpx.AsyncClient, tokens: TokenFactory, params: dict[str, str]
) -> None:
    assert_problem(await client.get(PATH, params=params, headers=tokens.coordinator), 422)


async def test_events_past_retention_are_purged_by_the_purge_job(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    await active_ally(client, tokens, "ally-1")
    database = Database(settings)
    try:
        counts = await run_all_jobs(database, settings, now=utcnow() + timedelta(days=364))
        assert counts.audit_events_deleted == 0
        assert await count(session) == 1
        short = settings.model_copy(update={"audit_retention_days": 30})
        counts = await run_all_jobs(database, short, now=utcnow() + timedelta(days=31))
        assert counts.audit_events_deleted == 1
        assert await count(session) == 0
    finally:
        await database.dispose()


async def test_an_event_is_written_with_its_change_or_not_at_all(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """A refused transition (409) leaves no event: the event is in the change's transaction."""
    ally = await active_ally(client, tokens, "ally-1")
    again = await client.post(f"/v1/allies/{ally['id']}/approve", headers=tokens.coordinator)
    assert_problem(again, 409)
    assert [e["action"] for e in await trail(client, tokens)] == ["ally.approve"]
