from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import AllyStatus
from allyapi.core.db.models import today
from allyapi.training.models import TrainingRecord
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem
from tests.training.factories import ally_headers, make_ally, make_course, make_record


async def test_ally_self_reports_unverified_and_coordinator_verifies(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1", status=AllyStatus.applied)
    course = await make_course(session, "MHFA", validity_months=12)
    response = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": "2024-01-31", "evidence_ref": "doc-7"},
        headers=ally_headers(tokens, "ally-1"),
    )
    assert response.status_code == 201, response.text
    record = response.json()
    assert record == {
        "id": record["id"],
        "ally_id": str(ally.id),
        "course_id": str(course.id),
        "completed_on": "2024-01-31",
        "expires_on": "2025-01-31",
        "verified": False,
        "evidence_ref": "doc-7",
        "external_id": None,
        "status": "expired",
    }
    assert response.headers["location"] == f"/v1/training-records/{record['id']}"
    path = f"/v1/training-records/{record['id']}"
    etag = (await client.get(path, headers=tokens.coordinator)).headers["etag"]
    verified = await client.post(f"{path}/verify", headers={**tokens.coordinator, "If-Match": etag})
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    assert verified.headers["etag"] != etag
    stored = await session.get_one(TrainingRecord, uuid.UUID(record["id"]))
    first_verified_at = stored.verified_at
    assert first_verified_at is not None
    again = await client.post(f"{path}/verify", headers=tokens.coordinator)
    assert again.json() == verified.json()
    assert again.headers["etag"] == verified.headers["etag"]  # idempotent: nothing changed
    stale = await client.post(f"{path}/verify", headers={**tokens.coordinator, "If-Match": etag})
    assert_problem(stale, 412)


async def test_coordinator_records_verified_training(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1")
    course = await make_course(session, "Listening", validity_months=None)
    body = {"course_id": str(course.id), "completed_on": today().isoformat()}
    missing_ally = await client.post("/v1/training-records", json=body, headers=tokens.coordinator)
    assert assert_problem(missing_ally, 422)["errors"][0]["loc"] == ["body", "ally_id"]
    response = await client.post(
        "/v1/training-records",
        json={**body, "ally_id": str(ally.id), "external_id": "lms-1"},
        headers=tokens.coordinator,
    )
    assert response.status_code == 201, response.text
    assert response.json()["verified"] is True
    assert response.json()["expires_on"] is None
    assert response.json()["status"] == "valid"
    duplicate = await client.post(
        "/v1/training-records",
        json={**body, "ally_id": str(ally.id), "external_id": "lms-1"},
        headers=tokens.coordinator,
    )
    assert_problem(duplicate, 409)


async def test_body_references_outside_the_org_are_422(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1")
    stranger = await make_ally(session, tokens, "ally-9", org=OTHER_ORG)
    course = await make_course(session, "MHFA")
    foreign_course = await make_course(session, "MHFA", org=OTHER_ORG)
    day = today().isoformat()
    cases = [
        ({"ally_id": str(stranger.id), "course_id": str(course.id)}, ["body", "ally_id"]),
        ({"ally_id": str(uuid.uuid4()), "course_id": str(course.id)}, ["body", "ally_id"]),
        ({"ally_id": str(ally.id), "course_id": str(foreign_course.id)}, ["body", "course_id"]),
    ]
    for fields, loc in cases:
        response = await client.post(
            "/v1/training-records", json={**fields, "completed_on": day}, headers=tokens.coordinator
        )
        assert assert_problem(response, 422)["errors"][0]["loc"] == loc


async def test_completion_date_bounds(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await make_ally(session, tokens, "ally-1")
    course = await make_course(session, "MHFA")
    headers = ally_headers(tokens, "ally-1")
    for day in ((today() + timedelta(days=2)).isoformat(), "1969-12-31", "not-a-date"):
        response = await client.post(
            "/v1/training-records",
            json={"course_id": str(course.id), "completed_on": day},
            headers=headers,
        )
        assert_problem(response, 422)
        assert day not in response.text
    long_evidence = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": "2024-01-01", "evidence_ref": "e" * 501},
        headers=headers,
    )
    assert_problem(long_evidence, 422)
    unknown = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": "2024-01-01", "verified": True},
        headers=headers,
    )
    assert assert_problem(unknown, 422)["errors"][0]["loc"] == ["body", "verified"]


async def test_ally_acts_only_on_own_records(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    mine = await make_ally(session, tokens, "ally-1")
    theirs = await make_ally(session, tokens, "ally-2")
    course = await make_course(session, "MHFA")
    their_record = await make_record(
        session, theirs, course, completed_on=date(2024, 1, 1), expires_on=date(2026, 1, 1)
    )
    headers = ally_headers(tokens, "ally-1")
    for_them = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": "2024-01-01", "ally_id": str(theirs.id)},
        headers=headers,
    )
    assert_problem(for_them, 403)
    own = await client.post(
        "/v1/training-records",
        json={"course_id": str(course.id), "completed_on": "2024-01-01", "ally_id": str(mine.id)},
        headers=headers,
    )
    assert own.status_code == 201
    listed = (await client.get("/v1/training-records", headers=headers)).json()
    assert [item["id"] for item in listed["items"]] == [own.json()["id"]]
    filtered = await client.get(f"/v1/training-records?ally_id={theirs.id}", headers=headers)
    assert_problem(filtered, 403)
    assert_problem(
        await client.get(f"/v1/training-records/{their_record.id}", headers=headers), 404
    )
    read_own = await client.get(f"/v1/training-records/{own.json()['id']}", headers=headers)
    assert read_own.status_code == 200
    assert read_own.headers["etag"]
    all_of_org = (await client.get("/v1/training-records", headers=tokens.coordinator)).json()
    assert len(all_of_org["items"]) == 2


async def test_filters_and_pagination(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1")
    other = await make_ally(session, tokens, "ally-2")
    mhfa = await make_course(session, "MHFA")
    listening = await make_course(session, "Listening")
    now = today()
    valid = await make_record(
        session, ally, mhfa, completed_on=now, expires_on=now + timedelta(days=400)
    )
    expiring = await make_record(
        session, ally, listening, completed_on=now, expires_on=now + timedelta(days=30)
    )
    expired = await make_record(session, other, mhfa, completed_on=now, expires_on=now)
    forever = await make_record(session, other, listening, completed_on=now, expires_on=None)

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/training-records?{query}", headers=tokens.coordinator)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids("status=valid") == [str(valid.id), str(forever.id)]
    assert await ids("status=expiring") == [str(expiring.id)]
    assert await ids("status=expired") == [str(expired.id)]
    assert await ids(f"ally_id={other.id}") == [str(expired.id), str(forever.id)]
    assert await ids(f"course_id={mhfa.id}&ally_id={ally.id}") == [str(valid.id)]
    assert_problem(
        await client.get("/v1/training-records?status=soon", headers=tokens.coordinator), 422
    )

    first = (await client.get("/v1/training-records?limit=3", headers=tokens.coordinator)).json()
    assert [item["id"] for item in first["items"]] == [
        str(valid.id),
        str(expiring.id),
        str(expired.id),
    ]
    newer = await make_record(session, ally, mhfa, completed_on=now, expires_on=None)
    rest = (
        await client.get(
            f"/v1/training-records?limit=3&cursor={first['next_cursor']}",
            headers=tokens.coordinator,
        )
    ).json()
    assert [item["id"] for item in rest["items"]] == [str(forever.id), str(newer.id)]
    assert rest["next_cursor"] is None
    tampered = await client.get(
        "/v1/training-records?cursor=WyJub3QtYS10aW1lIiwibm9wZSJd", headers=tokens.coordinator
    )
    assert_problem(tampered, 422)


async def test_delete(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1")
    course = await make_course(session, "MHFA")
    record = await make_record(
        session, ally, course, completed_on=date(2024, 1, 1), expires_on=None
    )
    path = f"/v1/training-records/{record.id}"
    assert (await client.delete(path, headers=tokens.coordinator)).status_code == 204
    assert_problem(await client.get(path, headers=tokens.coordinator), 404)
    assert_problem(await client.delete(path, headers=tokens.coordinator), 404)


async def test_auth_cases(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "ally-1")
    course = await make_course(session, "MHFA")
    record = await make_record(
        session, ally, course, completed_on=date(2024, 1, 1), expires_on=None
    )
    path = f"/v1/training-records/{record.id}"
    body = {"course_id": str(course.id), "completed_on": "2024-01-01", "ally_id": str(ally.id)}
    unauthenticated = [
        client.get("/v1/training-records"),
        client.post("/v1/training-records", json=body),
        client.get(path),
        client.post(f"{path}/verify"),
        client.delete(path),
    ]
    for call in unauthenticated:
        assert_problem(await call, 401)
    # An employee without an ally profile, an analyst and an integration are not allowed.
    for headers in (tokens.employee, tokens.analyst, tokens.integration):
        assert_problem(await client.get("/v1/training-records", headers=headers), 403)
        assert_problem(await client.post("/v1/training-records", json=body, headers=headers), 403)
        assert_problem(await client.get(path, headers=headers), 403)
    own = ally_headers(tokens, "ally-1")
    assert_problem(await client.post(f"{path}/verify", headers=own), 403)
    assert_problem(await client.delete(path, headers=own), 403)
    # Another organisation: its coordinator, and the same person's sub in that org.
    foreign = tokens.other_org_coordinator
    assert_problem(await client.get(path, headers=foreign), 404)
    assert_problem(await client.post(f"{path}/verify", headers=foreign), 404)
    assert_problem(await client.delete(path, headers=foreign), 404)
    assert (await client.get("/v1/training-records", headers=foreign)).json()["items"] == []
    assert_problem(
        await client.post("/v1/training-records", json=body, headers=foreign), 422
    )  # the ally is not in that org: a body reference
    assert_problem(await client.get(path, headers=ally_headers(tokens, "ally-1", OTHER_ORG)), 403)
    assert_problem(
        await client.get(f"/v1/training-records/{uuid.uuid4()}", headers=tokens.coordinator), 404
    )


async def test_record_ids_are_uuids(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    # /training-records/batch exists for POST only: other methods are told so, not "bad id".
    batch = await client.get("/v1/training-records/batch", headers=tokens.coordinator)
    assert_problem(batch, 405)
    assert_problem(
        await client.delete("/v1/training-records/batch", headers=tokens.coordinator), 405
    )
    assert_problem(await client.get("/v1/training-records/123", headers=tokens.coordinator), 404)


async def test_idempotency_key_replays_creates(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await make_ally(session, tokens, "ally-1")
    course = await make_course(session, "MHFA")
    body = {"course_id": str(course.id), "completed_on": "2024-01-01"}
    headers = {**ally_headers(tokens, "ally-1"), "Idempotency-Key": "key-1"}
    first = await client.post("/v1/training-records", json=body, headers=headers)
    again = await client.post("/v1/training-records", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other_body = await client.post(
        "/v1/training-records", json={**body, "completed_on": "2024-01-02"}, headers=headers
    )
    assert_problem(other_body, 422)
    listed = await client.get("/v1/training-records", headers=ally_headers(tokens, "ally-1"))
    assert len(listed.json()["items"]) == 1

    course_headers = {**tokens.coordinator, "Idempotency-Key": "key-1"}
    created = await client.post("/v1/training-courses", json={"name": "X"}, headers=course_headers)
    replayed = await client.post("/v1/training-courses", json={"name": "X"}, headers=course_headers)
    assert created.status_code == replayed.status_code == 201
    assert replayed.json() == created.json()
