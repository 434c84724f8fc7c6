"""GET /v1/me/export: everything held about the caller, and nothing of anyone else."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.contact_requests.models import AccessLogEntry
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.export import service as export_service
from allyapi.export.schemas import MeExport
from allyapi.export.service import Whose, export_document
from tests.allies.factories import required_course, training_record
from tests.contact_requests.factories import act, create, make_ally, person
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem

PATH = "/v1/me/export"
# What the requester typed, each a string found nowhere else.
TYPED = {
    "message": "Export-message: deadlines at the docks",
    "alias": "Export-alias Robin",
    "contact_detail": "robin.export@example.test",
    "anonymous_message": "Export-anon: nobody should know",
    "thread": "Export-thread: thank you for listening",
    "comment": "Export-comment: it helped a lot",
}
OTHERS = ("Other-requester: my own worries", "Other-org: not yours either", "Ally-reply-x")


async def export(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[dict[str, Any], str]:
    response = await client.get(PATH, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    MeExport.model_validate_json(response.content)  # the contract's schema, exactly
    body: dict[str, Any] = response.json()
    return body, response.text


async def access_log_rows(session: AsyncSession) -> int:
    await session.rollback()
    query = sa.select(sa.func.count()).select_from(AccessLogEntry)
    return int((await session.execute(query)).scalar_one())


@pytest.fixture
async def history(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> dict[str, Any]:
    """The requester ``asker``: a completed named request with thread, access log and
    feedback, and an anonymous one; another requester of the org and a namesake in another
    org with requests of their own."""
    ally = await make_ally(session, settings, "ally-1", name="Ally One")
    await make_ally(session, settings, "ally-9", org=OTHER_ORG)
    asker, as_ally = person(tokens, "asker"), person(tokens, "ally-1")
    named = await create(
        client, asker, ally_id=str(ally.id), message=TYPED["message"], alias=TYPED["alias"],
        contact_detail=TYPED["contact_detail"], preferred_channel="email",
    )  # fmt: skip
    rid = named["id"]
    assert (await client.get(f"/v1/contact-requests/{rid}", headers=as_ally)).status_code == 200
    assert (await act(client, rid, "accept", as_ally)).status_code == 200
    for who, text in ((asker, TYPED["thread"]), (as_ally, "Ally-reply: glad to")):
        posted = await client.post(
            f"/v1/contact-requests/{rid}/messages", json={"body": text}, headers=who
        )
        assert posted.status_code == 201, posted.text
    done = await act(client, rid, "complete", as_ally, {"signposted": True, "wellbeing": 4})
    assert done.status_code == 200, done.text
    given = await client.post(
        f"/v1/contact-requests/{rid}/feedback",
        json={"rating": 5, "felt_heard": True, "would_recommend": True,
              "comment": TYPED["comment"]},
        headers=asker,
    )  # fmt: skip
    assert given.status_code == 201, given.text
    anonymous = await create(
        client, asker, ally_id=str(ally.id), anonymous=True, message=TYPED["anonymous_message"]
    )
    await create(client, person(tokens, "someone-else"), message=OTHERS[0])
    namesake = tokens.headers("asker", "employee", org=OTHER_ORG)
    await create(client, namesake, message=OTHERS[1])
    return {"ally": ally, "named": rid, "anonymous": anonymous["id"], "asker": asker}


async def test_the_requester_gets_everything_they_typed_and_nothing_else(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, history: dict[str, Any]
) -> None:
    logged = await access_log_rows(session)
    body, text = await export(client, history["asker"])
    for typed in TYPED.values():
        assert typed in text, typed
    for foreign in (*OTHERS, "requester_ref", "subject_ref", "asker"):
        assert foreign not in text, foreign
    assert [r["id"] for r in body["requests"]] == [history["anonymous"], history["named"]]
    anonymous, named = body["requests"]
    assert named["message"] == TYPED["message"]
    assert named["alias"] == TYPED["alias"]
    assert named["contact_detail"] == TYPED["contact_detail"]
    assert named["preferred_channel"] == "email"
    assert named["ally"]["display_name"] == "Ally One"
    assert [m["body"] for m in named["messages"]] == [TYPED["thread"], "Ally-reply: glad to"]
    assert [m["author"] for m in named["messages"]] == ["requester", "ally"]
    assert named["access_log"]
    assert {entry["accessor"] for entry in named["access_log"]} == {"Ally One"}
    assert named["feedback"]["comment"] == TYPED["comment"]
    assert named["feedback"]["rating"] == 5
    assert anonymous["anonymous"] is True
    assert anonymous["message"] == TYPED["anonymous_message"]
    assert anonymous["messages"] == []
    assert anonymous["feedback"] is None
    assert body["ally"] is None
    assert body["audit_events"] == []
    assert body["requests_included"] is True
    assert body["programme_feedback_included"] is False
    assert any("programme feedback" in note for note in body["notes"])
    # Reading one's own requests is not an ally's access.
    assert await access_log_rows(session) == logged


async def test_the_ally_gets_profile_training_and_assigned_requests_without_content(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, history: dict[str, Any]
) -> None:
    ally = history["ally"]
    course = await required_course(session, required=False, name="Listening")
    await training_record(session, str(ally.id), course)
    logged = await access_log_rows(session)
    body, text = await export(client, person(tokens, "ally-1"))
    assert body["requests"] == []
    assert body["ally"]["profile"]["id"] == str(ally.id)
    assert body["ally"]["profile"]["display_name"] == "Ally One"
    assert [r["course_id"] for r in body["ally"]["training_records"]] == [str(course)]
    assigned = body["ally"]["assigned_requests"]
    listed = await client.get("/v1/contact-requests", headers=person(tokens, "ally-1"))
    assert assigned == listed.json()["items"]  # what the ally's own list shows
    assert {history["named"], history["anonymous"]} <= {r["id"] for r in assigned}
    for typed in (*TYPED.values(), OTHERS[0]):
        assert typed not in text
    assert await access_log_rows(session) == logged


async def test_someone_with_no_data_gets_an_empty_document(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    body, _ = await export(client, person(tokens, "newcomer"))
    assert body["requests"] == []
    assert body["ally"] is None
    assert body["audit_events"] == []


async def test_another_org_namesake_gets_only_their_own(
    client: httpx.AsyncClient, tokens: TokenFactory, history: dict[str, Any]
) -> None:
    body, text = await export(client, tokens.headers("asker", "employee", org=OTHER_ORG))
    assert [r["message"] for r in body["requests"]] == [OTHERS[1]]
    for typed in TYPED.values():
        assert typed not in text


async def test_a_coordinator_token_gets_its_programme_actions_but_no_requests(
    client: httpx.AsyncClient, tokens: TokenFactory, history: dict[str, Any]
) -> None:
    """Contact requests are never reached with an oversight role, one's own included."""
    ally_id = str(history["ally"].id)
    coordinator = tokens.headers("asker", "employee", "coordinator", name="Asker as staff")
    assert (
        await client.post(f"/v1/allies/{ally_id}/pause", headers=coordinator)
    ).status_code == 200
    body, text = await export(client, coordinator)
    assert body["requests_included"] is False
    assert body["requests"] == []
    assert TYPED["message"] not in text
    assert [e["action"] for e in body["audit_events"]] == ["ally.pause"]
    assert body["audit_events"][0]["actor"]["display_name"] == "Asker as staff"
    analyst, _ = await export(client, tokens.headers("asker", "analyst"))
    assert analyst["requests"] == []
    assert analyst["audit_events"] == body["audit_events"]


@pytest.mark.parametrize(
    ("who", "status"), [("none", 401), ("integration", 403), ("integration+employee", 403)]
)
async def test_machines_and_strangers_are_refused(
    client: httpx.AsyncClient, tokens: TokenFactory, who: str, status: int
) -> None:
    headers = {
        "none": {},
        "integration": tokens.integration,
        "integration+employee": tokens.headers("hris-1", "integration", "employee"),
    }[who]
    assert_problem(await client.get(PATH, headers=headers), status)


async def test_a_long_history_is_written_batch_by_batch(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests are read in keyset batches and each batch is written before the next is read."""
    ally = await make_ally(session, settings, "ally-1", capacity=50)
    asker = person(tokens, "asker")
    made = []
    for i in range(7):
        request = await create(client, asker, ally_id=str(ally.id), message=f"Batch {i}")
        assert (await act(client, request["id"], "cancel", asker)).status_code == 200
        made.append(request["id"])
    monkeypatch.setattr(export_service, "BATCH", 3)
    body, _ = await export(client, asker)
    assert [r["id"] for r in body["requests"]] == made[::-1]
    whose = Whose(
        org="acme",
        requester_ref=_requester_ref(tokens, settings, "asker"),
        ally_ref="-",
        audit_ref="-",
        requests_included=True,
    )
    pieces = [piece async for piece in export_document(database, settings, whose)]
    request_batches = [p for p in pieces if p.lstrip(b",").startswith(b'{"id"')]
    assert len(request_batches) == 3  # 3 + 3 + 1
    assert json.loads(b"".join(pieces))["requests"] == body["requests"]


def _requester_ref(tokens: TokenFactory, settings: Settings, sub: str) -> str:
    from allyapi.core.auth.pseudonym import requester_ref
    from allyapi.core.auth.tokens import dev_subject

    return requester_ref(settings.pseudonym_key_bytes, dev_subject(settings, "acme", sub))
