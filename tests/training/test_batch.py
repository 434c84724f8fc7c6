from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.training.models import TrainingCourse, TrainingRecord
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem
from tests.training.factories import ally_headers, make_ally, make_course, make_record

BATCH = "/v1/training-records/batch"


async def run(
    client: httpx.AsyncClient, headers: dict[str, str], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    response = await client.post(BATCH, json={"rows": rows}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def count_records(session: AsyncSession) -> int:
    return (
        await session.execute(sa.select(sa.func.count()).select_from(TrainingRecord))
    ).scalar_one()


def row(external_id: str, sub: str | None = "hr-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"external_id": external_id, "course_name": "MHFA"}
    if sub is not None:
        base["sub"] = sub
    return {"completed_on": "2024-01-01", **base, **fields}


def mixed_rows(ally: Ally, course: TrainingCourse) -> list[Any]:
    """One row per outcome; the comment says what each should answer."""
    return [
        row("lms-1", completed_on="2024-01-31"),  # created, by sub and course name
        row(  # created, by ids, self-declared unverified
            "lms-2",
            sub=None,
            ally_id=str(ally.id),
            course_name=None,
            course_id=str(course.id),
            evidence_ref="cert-2",
            verified=False,
        ),
        row("lms-old"),  # updated: the stored record was unverified
        row("lms-3", sub="hr-2", course_name="Listening", completed_on="2024-05-05"),  # created
        row("lms-4", sub="nobody"),  # ally_not_found
        row("lms-5", course_name="Knitting"),  # course_not_found
        row("lms-6", completed_on="2999-01-01"),  # invalid: in the future
        row("lms-7", ally_id=str(ally.id)),  # invalid: both sub and ally_id
        row("lms-1", sub="hr-2"),  # duplicate_external_id
        row("lms-8", sub=None, course_name=None),  # invalid: neither reference
    ]


async def test_every_row_gets_its_own_result(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "hr-1")
    await make_ally(session, tokens, "hr-2")
    course = await make_course(session, "MHFA", validity_months=12)
    await make_course(session, "Listening", validity_months=None)
    existing = await make_record(
        session,
        ally,
        course,
        completed_on=date(2024, 1, 1),
        expires_on=date(2025, 1, 1),
        verified=False,
        external_id="lms-old",
    )
    result = await run(client, tokens.integration, mixed_rows(ally, course))
    outcomes = [
        (r["external_id"], r["status"], r["error"] and r["error"]["code"])
        for r in result["results"]
    ]
    assert outcomes == [
        ("lms-1", "created", None),
        ("lms-2", "created", None),
        ("lms-old", "updated", None),
        ("lms-3", "created", None),
        ("lms-4", "error", "ally_not_found"),
        ("lms-5", "error", "course_not_found"),
        ("lms-6", "error", "invalid"),
        ("lms-7", "error", "invalid"),
        ("lms-1", "error", "duplicate_external_id"),
        ("lms-8", "error", "invalid"),
    ]
    assert [r["index"] for r in result["results"]] == list(range(10))
    assert "nobody" not in str(result)
    counts = (result["created"], result["updated"], result["unchanged"], result["errors"])
    assert counts == (3, 1, 0, 6)
    assert result["results"][2]["id"] == str(existing.id)


async def test_stored_values_and_a_rerun_changes_nothing(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    ally = await make_ally(session, tokens, "hr-1")
    await make_ally(session, tokens, "hr-2")
    course = await make_course(session, "MHFA", validity_months=12)
    await make_course(session, "Listening", validity_months=None)
    rows = mixed_rows(ally, course)
    first = await run(client, tokens.integration, rows)
    listed = await client.get("/v1/training-records?limit=100", headers=tokens.coordinator)
    records = {r["external_id"]: r for r in listed.json()["items"]}
    assert records["lms-1"]["expires_on"] == "2025-01-31"
    assert records["lms-1"]["verified"] is True  # trusted sources record verified training
    assert records["lms-2"]["verified"] is False
    assert records["lms-2"]["evidence_ref"] == "cert-2"
    assert records["lms-3"]["expires_on"] is None
    assert await count_records(session) == 4

    again = await run(client, tokens.integration, rows)
    assert [r["status"] for r in again["results"][:4]] == ["unchanged"] * 4
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    assert await count_records(session) == 4


async def test_a_changed_row_is_updated(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await make_ally(session, tokens, "hr-1")
    await make_course(session, "MHFA", validity_months=12)
    row = {
        "external_id": "lms-1",
        "sub": "hr-1",
        "course_name": "MHFA",
        "completed_on": "2024-01-31",
    }
    first = await run(client, tokens.coordinator, [row])
    record_id = first["results"][0]["id"]
    etag = (
        await client.get(f"/v1/training-records/{record_id}", headers=tokens.coordinator)
    ).headers["etag"]
    changed = await run(client, tokens.coordinator, [{**row, "completed_on": "2024-06-30"}])
    assert changed["results"][0] == {
        "index": 0,
        "external_id": "lms-1",
        "status": "updated",
        "id": record_id,
        "error": None,
    }
    read = await client.get(f"/v1/training-records/{record_id}", headers=tokens.coordinator)
    assert read.json()["expires_on"] == "2025-06-30"
    assert read.headers["etag"] != etag


async def test_a_body_that_breaks_the_schema_is_422_without_echo(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    good = row("lms-1")
    cases: list[tuple[Any, list[Any]]] = [
        ({"rows": []}, ["body", "rows"]),
        ({"rows": [good], "mode": "s3cret"}, ["body", "mode"]),
        ({"rows": [good, {**good, "status": "s3cret"}]}, ["body", "rows", 1, "status"]),
        ({"rows": [good, {**good, "completed_on": "s3cret"}]}, ["body", "rows", 1, "completed_on"]),
        ({"rows": [good, {**good, "verified": "s3cret"}]}, ["body", "rows", 1, "verified"]),
        ({"rows": [good, {**good, "completed_on": 0}]}, ["body", "rows", 1, "completed_on"]),
        ({"rows": ["s3cret"]}, ["body", "rows", 0]),
    ]
    for body, loc in cases:
        response = await client.post(BATCH, json=body, headers=tokens.integration)
        # The row's index is always named; the field too when the error is about one field.
        assert assert_problem(response, 422)["errors"][0]["loc"][: len(loc)] in (loc, loc[:3])
        assert "s3cret" not in response.text


async def test_over_1000_rows_is_422(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    body = {"rows": [row(f"e{n}") for n in range(1001)]}
    response = await client.post(BATCH, json=body, headers=tokens.integration)
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "rows"]


async def test_a_full_batch_of_1000_rows(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for number in range(10):
        await make_ally(session, tokens, f"hr-{number}")
    await make_course(session, "MHFA", validity_months=36)
    # Every string at its longest: the body cap of this route must still let it through.
    rows = [
        {
            "external_id": f"{n:04}".ljust(200, "x"),
            "sub": f"hr-{n % 10}",
            "course_name": "MHFA",
            "completed_on": "2024-02-29",
            "evidence_ref": "e" * 500,
        }
        for n in range(1000)
    ]
    first = await run(client, tokens.integration, rows)
    assert first["created"] == 1000
    second = await run(client, tokens.integration, rows)
    assert second["unchanged"] == 1000
    assert await count_records(session) == 1000


async def test_concurrent_identical_batches_never_duplicate(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for number in range(5):
        await make_ally(session, tokens, f"hr-{number}")
    await make_course(session, "MHFA", validity_months=12)
    rows = [
        {
            "external_id": f"c{n}",
            "sub": f"hr-{n % 5}",
            "course_name": "MHFA",
            "completed_on": "2024-01-01",
        }
        for n in range(100)
    ]
    responses = await asyncio.gather(
        *(client.post(BATCH, json={"rows": rows}, headers=tokens.integration) for _ in range(3))
    )
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    for index in range(100):
        statuses = sorted(r.json()["results"][index]["status"] for r in responses)
        assert statuses == ["created", "unchanged", "unchanged"]
        assert len({r.json()["results"][index]["id"] for r in responses}) == 1
    assert await count_records(session) == 100


async def test_auth_cases(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    await make_ally(session, tokens, "hr-1")
    await make_ally(session, tokens, "hr-1", org=OTHER_ORG)
    await make_course(session, "MHFA")
    row = {
        "external_id": "lms-1",
        "sub": "hr-1",
        "course_name": "MHFA",
        "completed_on": "2024-01-01",
    }
    assert_problem(await client.post(BATCH, json={"rows": [row]}), 401)
    for headers in (tokens.employee, tokens.analyst, ally_headers(tokens, "hr-1")):
        assert_problem(await client.post(BATCH, json={"rows": [row]}, headers=headers), 403)
    # Another org's integration cannot reach this org's courses (its own ally is found).
    foreign = tokens.headers("hris-9", "integration", org=OTHER_ORG)
    result = await run(client, foreign, [row])
    assert result["results"][0]["error"]["code"] == "course_not_found"
