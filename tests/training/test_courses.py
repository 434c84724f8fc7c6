from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.training.models import TrainingCourse, TrainingRecord
from allyapi.training.repository import CourseRepository
from allyapi.training.service import settle_expiry
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.training.factories import make_ally, make_course, make_record, post_course


async def test_coordinator_creates_and_employee_reads(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    created = await post_course(client, tokens, provider="MHFA England")
    assert created == {
        "id": created["id"],
        "name": "Mental Health First Aid",
        "provider": "MHFA England",
        "validity_months": 36,
        "required": True,
    }
    read = await client.get(f"/v1/training-courses/{created['id']}", headers=tokens.employee)
    assert read.status_code == 200
    assert read.json() == created
    assert read.headers["etag"]
    listed = await client.get("/v1/training-courses", headers=tokens.employee)
    assert listed.json() == {"items": [created], "next_cursor": None}


async def test_never_expiring_course_and_required_filter(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    await post_course(client, tokens, name="Boundaries", validity_months=None, required=False)
    await post_course(client, tokens)
    optional = await client.get("/v1/training-courses?required=false", headers=tokens.employee)
    assert [c["name"] for c in optional.json()["items"]] == ["Boundaries"]
    assert optional.json()["items"][0]["validity_months"] is None


async def test_duplicate_name_is_409(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    first = await post_course(client, tokens)
    again = await client.post(
        "/v1/training-courses",
        json={"name": "Mental Health First Aid"},
        headers=tokens.coordinator,
    )
    assert_problem(again, 409)
    other = await post_course(client, tokens, name="Suicide awareness")
    rename = await client.patch(
        f"/v1/training-courses/{other['id']}",
        json={"name": first["name"]},
        headers=tokens.coordinator,
    )
    assert_problem(rename, 409)
    # The same name in another organisation is another course.
    elsewhere = await client.post(
        "/v1/training-courses",
        json={"name": "Mental Health First Aid"},
        headers=tokens.other_org_coordinator,
    )
    assert elsewhere.status_code == 201


async def test_keyset_pagination_by_name(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    for name in ("C", "A", "E", "B", "D"):
        await post_course(client, tokens, name=name)
    first = (await client.get("/v1/training-courses?limit=2", headers=tokens.employee)).json()
    assert [c["name"] for c in first["items"]] == ["A", "B"]
    await post_course(client, tokens, name="AA")  # sorts before the cursor: not re-served
    second = (
        await client.get(
            f"/v1/training-courses?limit=2&cursor={first['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [c["name"] for c in second["items"]] == ["C", "D"]
    third = (
        await client.get(
            f"/v1/training-courses?limit=2&cursor={second['next_cursor']}", headers=tokens.employee
        )
    ).json()
    assert [c["name"] for c in third["items"]] == ["E"]
    assert third["next_cursor"] is None
    bad = await client.get("/v1/training-courses?cursor=WyJhIiwibm9wZSJd", headers=tokens.employee)
    assert_problem(bad, 422)


async def test_patch_honours_if_match(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await post_course(client, tokens)
    path = f"/v1/training-courses/{created['id']}"
    etag = (await client.get(path, headers=tokens.coordinator)).headers["etag"]
    changed = await client.patch(
        path,
        json={"provider": "St John", "required": False},
        headers={**tokens.coordinator, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["provider"] == "St John"
    assert changed.json()["required"] is False
    assert changed.headers["etag"] != etag
    stale = await client.patch(
        path, json={"provider": "x"}, headers={**tokens.coordinator, "If-Match": etag}
    )
    assert_problem(stale, 412)
    assert_problem(await client.patch(path, json={"name": None}, headers=tokens.coordinator), 422)


async def test_validity_change_rederives_expiry(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    created = await post_course(client, tokens, validity_months=12)
    course_id = uuid.UUID(created["id"])
    ally = await make_ally(session, tokens, "ally-1")
    course = await session.get_one(TrainingCourse, course_id)
    record = await make_record(
        session, ally, course, completed_on=date(2024, 1, 31), expires_on=date(2025, 1, 31)
    )
    record_id = record.id
    path = f"/v1/training-courses/{created['id']}"
    response = await client.patch(path, json={"validity_months": 1}, headers=tokens.coordinator)
    assert response.status_code == 200, response.text
    session.expire_all()
    stored = await session.get_one(TrainingRecord, record_id)
    assert stored.expires_on == date(2024, 2, 29)
    assert stored.version == 2
    forever = await client.patch(path, json={"validity_months": None}, headers=tokens.coordinator)
    assert forever.json()["validity_months"] is None
    session.expire_all()
    assert (await session.get_one(TrainingRecord, record_id)).expires_on is None


async def test_bad_input_is_422_without_echo(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    for body in (
        {"name": "X", "status": "secret-value-123"},
        {"name": "X", "validity_months": 0},
        {"name": "X", "validity_months": 241},
        {"name": ""},
        {"name": "X" * 201},
        {"name": "X", "required": "yes"},
        {"name": "X", "validity_months": "12"},
    ):
        response = await client.post("/v1/training-courses", json=body, headers=tokens.coordinator)
        assert_problem(response, 422)
        assert "secret-value-123" not in response.text
    unknown = await client.post(
        "/v1/training-courses", json={"name": "X", "status": "s3cret"}, headers=tokens.coordinator
    )
    assert assert_problem(unknown, 422)["errors"][0]["loc"] == ["body", "status"]
    assert "s3cret" not in unknown.text
    course = await post_course(client, tokens)
    patch = await client.patch(
        f"/v1/training-courses/{course['id']}",
        json={"version": "s3cret"},
        headers=tokens.coordinator,
    )
    assert assert_problem(patch, 422)["errors"][0]["loc"] == ["body", "version"]
    assert "s3cret" not in patch.text


async def test_auth_cases(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    created = await post_course(client, tokens)
    path = f"/v1/training-courses/{created['id']}"
    body = {"name": "Other"}
    assert_problem(await client.get("/v1/training-courses"), 401)
    assert_problem(await client.get(path), 401)
    assert_problem(await client.post("/v1/training-courses", json=body), 401)
    assert_problem(await client.patch(path, json=body), 401)
    assert_problem(await client.get("/v1/training-courses", headers=tokens.analyst), 403)
    assert_problem(await client.get(path, headers=tokens.integration), 403)
    assert_problem(
        await client.post("/v1/training-courses", json=body, headers=tokens.employee), 403
    )
    assert_problem(await client.patch(path, json=body, headers=tokens.employee), 403)
    assert_problem(await client.get(path, headers=tokens.other_org_employee), 404)
    assert_problem(await client.patch(path, json=body, headers=tokens.other_org_coordinator), 404)
    others = await client.get("/v1/training-courses", headers=tokens.other_org_employee)
    assert others.json()["items"] == []
    assert_problem(
        await client.get(f"/v1/training-courses/{uuid.uuid4()}", headers=tokens.employee), 404
    )


async def test_a_record_written_during_a_validity_change_gets_the_new_validity(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    course = await make_course(session, "MHFA", validity_months=12)
    ally = await make_ally(session, tokens, "ally-1")
    course_id, ally_id = course.id, ally.id
    warm_up = await client.post(  # the first request of a run is slow; this one must not be
        "/v1/training-records",
        json={"course_id": str(course_id), "ally_id": str(ally_id), "completed_on": "2024-01-01"},
        headers=tokens.coordinator,
    )
    assert warm_up.status_code == 201
    # A validity change in flight: its transaction holds the course row (PATCH locks it too).
    locked = sa.select(TrainingCourse).where(col(TrainingCourse.id) == course_id)
    await session.execute(locked.with_for_update())
    await session.execute(
        sa.update(TrainingCourse)
        .where(col(TrainingCourse.id) == course_id)
        .values(validity_months=1)
    )
    body = {"course_id": str(course_id), "ally_id": str(ally_id), "completed_on": "2024-01-31"}
    post = asyncio.create_task(
        client.post("/v1/training-records", json=body, headers=tokens.coordinator)
    )
    await asyncio.sleep(0.3)
    assert not post.done()  # waits for the change (PostgreSQL: FOR SHARE; SQLite: write lock)
    await session.commit()
    response = await post
    assert response.status_code == 201, response.text
    assert response.json()["expires_on"] == "2024-02-29"


async def test_settle_expiry_rederives_when_the_validity_moved(
    tokens: TokenFactory, session: AsyncSession
) -> None:
    """The SQLite side of the test above: the validity is re-read after the write."""
    course = await make_course(session, "MHFA", validity_months=1)
    ally = await make_ally(session, tokens, "ally-1")
    record = await make_record(
        session, ally, course, completed_on=date(2024, 1, 31), expires_on=date(2025, 1, 31)
    )
    record_id, course_id = record.id, course.id
    await settle_expiry(CourseRepository(session), ORG, {course_id: 12})  # derived from 12
    await session.commit()
    session.expire_all()
    assert (await session.get_one(TrainingRecord, record_id)).expires_on == date(2024, 2, 29)
    await settle_expiry(CourseRepository(session), ORG, {course_id: 1})  # unchanged: no-op
    await session.commit()
