from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.feedback.factories import ally, contact_request
from tests.helpers import OTHER_ORG, TokenFactory, assert_problem

SUMMARY = "/v1/feedback/summary"
HIDDEN = {"value": None, "suppressed": True}


Arrive = Callable[[], Awaitable[int]]


async def give(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    ally_id: uuid.UUID,
    requesters: range,
    *,
    comment: bool = True,
) -> None:
    for index in requesters:
        sub = f"req-{index}"
        request = await contact_request(session, tokens, sub, ally_id=ally_id)
        body = {
            "rating": 4 if index % 2 else 2,
            "felt_heard": True,
            "would_recommend": index % 2 == 1,
        }
        if comment:
            body["comment"] = f"comment {index}"
        response = await client.post(
            f"/v1/contact-requests/{request.id}/feedback",
            json=body,
            headers=tokens.headers(sub, "employee"),
        )
        assert response.status_code == 201, response.text


async def test_four_then_five_requesters_flip_the_summary(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    helper = await ally(session, tokens, "ally-1")
    await give(client, tokens, session, helper.id, range(4))
    await arrive()
    summary = (await client.get(SUMMARY, headers=tokens.coordinator)).json()
    requests = summary["requests"]
    assert summary["scope"] == "programme"
    for name in ("responses", "rating_average", "felt_heard_rate", "would_recommend_rate"):
        assert requests[name] == HIDDEN
    assert requests["comments"] == {"suppressed": True, "items": None}
    own = (await client.get(SUMMARY, headers=tokens.headers("ally-1", "employee"))).json()
    assert own["requests"]["rating_average"] == HIDDEN

    await give(client, tokens, session, helper.id, range(4, 5))
    await arrive()
    requests = (await client.get(SUMMARY, headers=tokens.coordinator)).json()["requests"]
    assert requests["responses"] == {"value": 5, "suppressed": False}
    # ratings 2,4,2,4,2 ; recommend for odd requesters (1 and 3)
    assert requests["rating_average"] == {"value": 2.8, "suppressed": False}
    assert requests["felt_heard_rate"] == {"value": 1.0, "suppressed": False}
    assert requests["would_recommend_rate"] == {"value": 0.4, "suppressed": False}
    assert requests["comments"]["suppressed"] is True  # 5 < k_comments (10)


async def test_comments_need_k_comments_respondents_and_carry_no_dates(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    helper = await ally(session, tokens, "ally-1")
    await give(client, tokens, session, helper.id, range(9))
    await arrive()
    hidden = (await client.get(SUMMARY, headers=tokens.coordinator)).json()["requests"]
    # Nine people: the figures of the first five (steps of k), comments need ten.
    assert hidden["responses"]["value"] == 5
    assert hidden["comments"] == {"suppressed": True, "items": None}

    await give(client, tokens, session, helper.id, range(9, 10))
    await arrive()
    shown = (await client.get(SUMMARY, headers=tokens.coordinator)).json()["requests"]
    assert shown["comments"]["suppressed"] is False
    assert sorted(shown["comments"]["items"]) == sorted(f"comment {i}" for i in range(10))
    assert all(isinstance(item, str) for item in shown["comments"]["items"])


async def test_allies_see_only_their_own_summary(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    mine = await ally(session, tokens, "ally-1")
    theirs = await ally(session, tokens, "ally-2")
    await give(client, tokens, session, theirs.id, range(5))
    await arrive()
    as_ally = tokens.headers("ally-1", "employee")

    own = (await client.get(SUMMARY, headers=as_ally)).json()
    assert own["scope"] == "ally"
    assert own["ally_id"] == str(mine.id)
    assert own["programme"] is None
    assert own["requests"]["responses"] == HIDDEN  # ally-2's feedback is not theirs
    assert_problem(await client.get(f"{SUMMARY}?ally_id={theirs.id}", headers=as_ally), 403)
    same = await client.get(f"{SUMMARY}?ally_id={mine.id}", headers=as_ally)
    assert same.status_code == 200

    coordinator = await client.get(f"{SUMMARY}?ally_id={theirs.id}", headers=tokens.coordinator)
    assert coordinator.json()["requests"]["responses"] == {"value": 5, "suppressed": False}
    theirs_own = await client.get(SUMMARY, headers=tokens.headers("ally-2", "employee"))
    assert theirs_own.json()["requests"]["responses"]["value"] == 5


async def test_programme_feedback_summary(
    client: httpx.AsyncClient, tokens: TokenFactory, arrive: Arrive
) -> None:
    for index in range(5):
        response = await client.post(
            "/v1/feedback",
            json={"category": "resources", "rating": 4, "comment": f"note {index}"},
            headers=tokens.headers(f"emp-{index}", "employee"),
        )
        assert response.status_code == 201
    await client.post(
        "/v1/feedback", json={"category": "other", "rating": 1}, headers=tokens.employee
    )
    await arrive()
    programme = (await client.get(SUMMARY, headers=tokens.coordinator)).json()["programme"]
    categories = {item["category"]: item for item in programme["categories"]}
    assert categories["resources"]["rating_average"] == {"value": 4.0, "suppressed": False}
    assert categories["other"]["responses"] == HIDDEN
    # The lone "other" entry is left out of the total too: total minus categories is zero.
    assert programme["responses"] == {"value": 5, "suppressed": False}
    assert programme["comments"] == {"suppressed": True, "items": None}


async def test_roles_auth_other_org_and_input(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession
) -> None:
    helper = await ally(session, tokens, "ally-1")
    elsewhere = await ally(session, tokens, "ally-9", org=OTHER_ORG)
    assert_problem(await client.get(SUMMARY), 401)
    assert_problem(await client.get(SUMMARY, headers=tokens.employee), 403)  # no ally profile
    assert_problem(await client.get(SUMMARY, headers=tokens.analyst), 403)
    assert_problem(await client.get(SUMMARY, headers=tokens.integration), 403)
    assert_problem(
        await client.get(f"{SUMMARY}?ally_id={elsewhere.id}", headers=tokens.coordinator), 404
    )
    assert_problem(
        await client.get(f"{SUMMARY}?ally_id={uuid.uuid4()}", headers=tokens.coordinator), 404
    )
    assert_problem(
        await client.get(f"{SUMMARY}?ally_id={helper.id}", headers=tokens.other_org_coordinator),
        404,
    )
    for query in ("from=2026-05-01&to=2026-01-01", "from=2010-01-01&to=2026-01-01", "to=x"):
        assert_problem(await client.get(f"{SUMMARY}?{query}", headers=tokens.coordinator), 422)
    snapped = await client.get(
        f"{SUMMARY}?from=2026-02-10&to=2026-03-03", headers=tokens.coordinator
    )
    assert (snapped.json()["starts_on"], snapped.json()["ends_on"]) == ("2026-02-01", "2026-03-31")


async def test_a_comment_destroyed_after_release_hides_its_whole_step(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, arrive: Arrive
) -> None:
    """Showing the other nine would tell the ally which comment was the erased requester's."""
    helper = await ally(session, tokens, "ally-1")
    await give(client, tokens, session, helper.id, range(10))
    await arrive()
    as_ally = tokens.headers("ally-1", "employee")
    before = (await client.get(SUMMARY, headers=as_ally)).json()["requests"]
    assert len(before["comments"]["items"]) == 10

    me = tokens.headers("req-3", "employee")
    [mine] = (await client.get("/v1/me/contact-requests", headers=me)).json()["items"]
    assert (
        await client.delete(f"/v1/contact-requests/{mine['id']}", headers=me)
    ).status_code == 204
    await arrive()
    after = (await client.get(SUMMARY, headers=as_ally)).json()["requests"]
    assert after["comments"] == {"suppressed": True, "items": None}
    assert after["responses"] == before["responses"]  # the ratings stay (statistics)
    assert after["rating_average"] == before["rating_average"]
