"""The insider attacks on aggregates found in the audit, replayed (docs/aggregates.md).

Each worked with legitimate tokens only, by reading before and after one person's
contribution. Each test replays one and asserts the insider learns nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from allyapi.feedback.models import ProgramFeedback
from allyapi.topics.defaults import DEFAULT_TOPICS
from tests.allies.factories import active_ally
from tests.helpers import TokenFactory, assert_problem
from tests.privacy.insider import Arrive

SUMMARY = "/v1/feedback/summary"
REPORT = "/v1/reports/program"


async def _helped(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    ally_id: str,
    ally_headers: dict[str, str],
    sub: str,
    feedback: dict[str, Any],
) -> None:
    """One colleague asks the ally, is helped, and gives feedback: all through the API."""
    me = tokens.headers(sub, "employee")
    created = await client.post(
        "/v1/contact-requests",
        json={
            "ally_id": ally_id,
            "topic": "stress",
            "message": "Can we talk?",
            "contact_detail": f"{sub}@example.com",
        },
        headers=me,
    )
    assert created.status_code == 201, created.text
    path = f"/v1/contact-requests/{created.json()['id']}"
    accepted = await client.post(f"{path}/accept", headers=ally_headers)
    assert accepted.status_code == 200, accepted.text
    seen = await client.get(path, headers=ally_headers)
    assert seen.json()["contact_detail"] == f"{sub}@example.com"  # the ally knows who it is
    done = await client.post(
        f"{path}/complete", json={"signposted": False, "wellbeing": 4}, headers=ally_headers
    )
    assert done.status_code == 200, done.text
    given = await client.post(f"{path}/feedback", json=feedback, headers=me)
    assert given.status_code == 201, given.text


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    comments = body["requests"]["comments"]
    if comments["items"] is not None:
        comments["items"] = sorted(comments["items"])
    return body


async def test_attack_1_an_ally_cannot_recover_one_named_persons_feedback(
    client: httpx.AsyncClient, tokens: TokenFactory, arrive: Arrive
) -> None:
    ally = await active_ally(client, tokens, "ally-1", max_open_requests=20)
    as_ally = tokens.headers("ally-1", "employee")
    for index in range(10):
        feedback = {
            "rating": 5,
            "felt_heard": True,
            "would_recommend": True,
            "comment": f"Really helpful, thank you ({index})",
        }
        await _helped(client, tokens, ally["id"], as_ally, f"colleague-{index}", feedback)
    await arrive()
    reads = {
        "the ally": (SUMMARY, {}, as_ally),
        "a coordinator": (SUMMARY, {"ally_id": ally["id"]}, tokens.coordinator),
        "an analyst, this week": (REPORT, {}, tokens.analyst),
        "an analyst, this month": (REPORT, {"interval": "month"}, tokens.analyst),
    }

    async def read_all() -> dict[str, Any]:
        found = {}
        for name, (path, params, headers) in reads.items():
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            found[name] = _comparable(body) if path == SUMMARY else body
        return found

    before = await read_all()
    own = before["the ally"]["requests"]
    assert own["responses"] == {"value": 10, "suppressed": False}
    assert own["rating_average"] == {"value": 5.0, "suppressed": False}
    assert len(own["comments"]["items"]) == 10

    bob = {"rating": 1, "felt_heard": False, "would_recommend": False, "comment": "Bob: no"}
    await _helped(client, tokens, ally["id"], as_ally, "bob", bob)
    await arrive()
    after = await read_all()
    for name in reads:
        assert after[name] == before[name], f"{name} sees Bob's feedback"


async def test_attack_2_employees_cannot_steer_the_report_groups(
    client: httpx.AsyncClient, tokens: TokenFactory, arrive: Arrive
) -> None:
    helper = await active_ally(client, tokens, "ally-1", max_open_requests=20)
    for index, topic in enumerate(["pregnancy", *(["menopause"] * 8)]):
        response = await client.post(
            "/v1/contact-requests",
            json={"ally_id": helper["id"], "topic": topic, "message": "Hello"},
            headers=tokens.headers(f"asker-{index}", "employee"),
        )
        assert response.status_code == 201, response.text
    await arrive()
    query = {"group_by": "topic"}
    before = (await client.get(REPORT, params=query, headers=tokens.analyst)).json()

    # A volunteer who is never approved offers "pregnancy"; five more offer twenty topics.
    odd = [f"odd-{n}" for n in range(20)]
    volunteers = [("steer-0", ["pregnancy"])] + [(f"steer-{n}", odd) for n in range(1, 6)]
    for sub, topics in volunteers:
        body = {"display_name": sub, "topics": topics}
        volunteered = await client.post(
            "/v1/allies", json=body, headers=tokens.headers(sub, "employee")
        )
        assert volunteered.status_code == 201, volunteered.text
    await arrive()
    after = (await client.get(REPORT, params=query, headers=tokens.analyst)).json()
    assert after == before
    expected = [*sorted(DEFAULT_TOPICS), "(other)"]
    for period in after["periods"]:
        assert [group["key"] for group in period["groups"]] == expected  # none folded away


async def test_attack_3_one_person_cannot_pad_a_programme_feedback_cell(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    attacker = tokens.headers("attacker", "employee")
    answer = {"category": "accessibility", "rating": 5}
    assert (await client.post("/v1/feedback", json=answer, headers=attacker)).status_code == 201
    for _ in range(3):
        assert_problem(await client.post("/v1/feedback", json=answer, headers=attacker), 429)
    victim = {"category": "accessibility", "rating": 2}
    victim_headers = tokens.headers("victim", "employee")
    assert (
        await client.post("/v1/feedback", json=victim, headers=victim_headers)
    ).status_code == 201
    await arrive()

    stored = (await session.execute(select(ProgramFeedback))).scalars().all()
    assert len(stored) == 2  # one answer per person, category and month
    summary = (await client.get(SUMMARY, headers=tokens.coordinator)).json()
    categories = {item["category"]: item for item in summary["programme"]["categories"]}
    hidden = {"value": None, "suppressed": True}
    assert categories["accessibility"]["responses"] == hidden
    assert categories["accessibility"]["rating_average"] == hidden
