from __future__ import annotations

import uuid
from datetime import date

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.feedback.models import RequestFeedback
from tests.feedback.factories import ally, contact_request
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem

BODY = {"rating": 4, "felt_heard": True, "would_recommend": True, "comment": "Kind and calm"}


def url(request_id: object) -> str:
    return f"/v1/contact-requests/{request_id}/feedback"


async def test_requester_gives_feedback_once(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    helper = await ally(session, tokens, "ally-1")
    request = await contact_request(session, tokens, "emp-1", ally_id=helper.id, topic="grief")

    response = await client.post(url(request.id), json=BODY, headers=tokens.employee)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "request_id": str(request.id),
        "rating": 4,
        "felt_heard": True,
        "would_recommend": True,
        "comment": "Kind and calm",
        "created_on": date.today().isoformat(),
    }

    again = await client.post(url(request.id), json={**BODY, "rating": 1}, headers=tokens.employee)
    assert_problem(again, 409)

    stored = (await session.execute(sa.select(RequestFeedback))).scalars().all()
    assert len(stored) == 1
    row = stored[0]
    assert (row.ally_id, row.topic, row.rating) == (helper.id, "grief", 4)
    assert isinstance(row.created_on, date)  # a day, never a time of day
    assert row.comment_sealed is not None
    assert "Kind" not in row.comment_sealed
    cipher = Cipher(tokens.settings.data_key_ring)
    assert cipher.open(row.comment_sealed, aad_for("request_feedback", row.id, "comment")) == (
        "Kind and calm"
    )


async def test_feedback_rows_hold_no_requester_link(session: AsyncSession) -> None:
    columns = set(RequestFeedback.__table__.columns.keys())  # type: ignore[attr-defined]
    assert "requester_ref" not in columns
    assert not any("created_at" in name or "updated_at" in name for name in columns)


async def test_not_completed_is_409(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    for status in ("pending", "accepted", "cancelled", "expired"):
        request = await contact_request(session, tokens, "emp-1", status=status)
        assert_problem(await client.post(url(request.id), json=BODY, headers=tokens.employee), 409)


async def test_someone_else_or_other_org_is_404(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    request = await contact_request(session, tokens, "emp-1")
    other = tokens.headers("emp-2", "employee")
    assert_problem(await client.post(url(request.id), json=BODY, headers=other), 404)
    # The same sub in another org is another person (docs/privacy.md, P8).
    same_sub_elsewhere = tokens.headers("emp-1", "employee", org=OTHER_ORG)
    assert_problem(await client.post(url(request.id), json=BODY, headers=same_sub_elsewhere), 404)
    assert_problem(
        await client.post(url(request.id), json=BODY, headers=tokens.other_org_employee), 404
    )
    assert_problem(await client.post(url(uuid.uuid4()), json=BODY, headers=tokens.employee), 404)


async def test_roles_and_auth(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    request = await contact_request(session, tokens, "emp-1")
    assert_problem(await client.post(url(request.id), json=BODY), 401)
    for headers in (
        tokens.analyst,
        tokens.integration,
        tokens.headers("coord-2", "coordinator"),
    ):
        assert_problem(await client.post(url(request.id), json=BODY, headers=headers), 403)


async def test_bad_input_is_422(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    request = await contact_request(session, tokens, "emp-1")
    for body in (
        {**BODY, "rating": 6},
        {**BODY, "rating": 0},
        {**BODY, "comment": "x" * 2001},
        {**BODY, "requester_ref": "x"},
        {"rating": 3},
    ):
        assert_problem(await client.post(url(request.id), json=body, headers=tokens.employee), 422)
    assert_problem(await client.post(url("not-a-uuid"), json=BODY, headers=tokens.employee), 422)
