"""Cursors are signed and bound to the list and filters that made them (docs/pagination.md).

Every list of the app, found in its route table (any route that takes ``PageQuery``), is
called with a genuine cursor (200) and with every kind of cursor that is not one: hand-made
(the old unsigned form, including the values that once gave 500s), of another list, of the
same list with other filters, of another org, signed with another key, truncated, and
genuinely signed but holding an instant no list can compute with. All of those are 422.
A new list route without an entry in ``LISTS`` fails ``test_every_list_is_covered``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.http.pagination import MAX_CURSOR_CHARS, PageRequest, binding_of, page_request
from allyapi.core.settings import Settings
from tests.contact_requests.factories import create, make_ally, person
from tests.helpers import ORG, OTHER_ORG, TokenFactory, assert_problem
from tests.webhooks.factories import PROGRAMME_EVENTS, subscribe

TIME_SORTED = {
    "/v1/training-records",
    "/v1/webhooks",
    "/v1/webhooks/{webhook_id}/deliveries",
    "/v1/me/contact-requests",
    "/v1/contact-requests",
    "/v1/contact-requests/{request_id}/messages",
    "/v1/contact-requests/{request_id}/access-log",
    "/v1/audit-events",
}


def _uses_pages(dependant: Dependant) -> bool:
    return any(d.call is page_request or _uses_pages(d) for d in dependant.dependencies)


def list_routes(app: FastAPI) -> set[str]:
    """Every GET route whose dependencies include the page dependency."""
    return {
        context.path_format
        for context in iter_route_contexts(app.routes)
        if isinstance(context.route, APIRoute)
        and "GET" in (context.methods or ())
        and _uses_pages(context.route.dependant)
    }


Caller = tuple[str, dict[str, str]]  # the concrete path and who may read it
Setup = Callable[[httpx.AsyncClient, TokenFactory, AsyncSession, Settings], Awaitable[Caller]]


async def _request_of(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> str:
    ally = await make_ally(session, settings, "robin")
    created = await create(client, tokens.employee, ally_id=str(ally.id))
    return str(created["id"])


async def _messages(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> Caller:
    request_id = await _request_of(client, tokens, session, settings)
    return f"/v1/contact-requests/{request_id}/messages", tokens.employee


async def _access_log(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> Caller:
    request_id = await _request_of(client, tokens, session, settings)
    return f"/v1/contact-requests/{request_id}/access-log", tokens.employee


async def _assigned(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> Caller:
    await make_ally(session, settings, "robin")
    return "/v1/contact-requests", person(tokens, "robin")


async def _deliveries(client: httpx.AsyncClient, tokens: TokenFactory, *_: Any) -> Caller:
    webhook = await subscribe(client, tokens.coordinator, events=PROGRAMME_EVENTS)
    return f"/v1/webhooks/{webhook['id']}/deliveries", tokens.coordinator


def simple(path: str, who: str) -> Setup:
    async def setup(client: httpx.AsyncClient, tokens: TokenFactory, *_: Any) -> Caller:
        return path, getattr(tokens, who)

    return setup


LISTS: dict[str, Setup] = {
    "/v1/allies": simple("/v1/allies", "employee"),
    "/v1/training-courses": simple("/v1/training-courses", "employee"),
    "/v1/training-records": simple("/v1/training-records", "coordinator"),
    "/v1/training/compliance": simple("/v1/training/compliance", "coordinator"),
    "/v1/resources": simple("/v1/resources", "employee"),
    "/v1/topics": simple("/v1/topics", "employee"),
    "/v1/webhooks": simple("/v1/webhooks", "coordinator"),
    "/v1/webhooks/{webhook_id}/deliveries": _deliveries,
    "/v1/me/contact-requests": simple("/v1/me/contact-requests", "employee"),
    "/v1/contact-requests": _assigned,
    "/v1/contact-requests/{request_id}/messages": _messages,
    "/v1/contact-requests/{request_id}/access-log": _access_log,
    "/v1/audit-events": simple("/v1/audit-events", "coordinator"),
}


def test_every_list_is_covered(app: FastAPI) -> None:
    assert list_routes(app) == set(LISTS)
    assert set(LISTS) >= TIME_SORTED


def unsigned(*values: str) -> str:
    """The form cursors had before they were signed: base64url of a JSON list."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def signed(
    settings: Settings,
    path: str,
    value: str,
    *,
    org: str = ORG,
    query: list[tuple[str, str]] | None = None,
    key: bytes | None = None,
) -> str:
    binding = binding_of(org, path, query or [])
    return PageRequest(1, None, key or settings.cursor_key, binding).cursor_at(value, uuid.uuid4())


def bad_cursors(settings: Settings, path: str) -> Iterator[tuple[str, str]]:
    when = "2026-01-01T00:00:00+00:00"
    some_id = str(uuid.uuid4())
    yield "hand-made", unsigned("A", "0" * 32)
    yield "hand-made year 1 +01:00", unsigned("0001-01-01T00:00:00+01:00", some_id)
    yield "hand-made naive", unsigned("2026-01-01T00:00:00", some_id)
    yield "not base64", "%%%"
    yield "other list", signed(settings, "/v1/other-list", when)
    yield "other filters", signed(settings, path, when, query=[("status", "valid")])
    yield "other org", signed(settings, path, when, org=OTHER_ORG)
    yield "other key", signed(settings, path, when, key=b"k" * 32)
    good = signed(settings, path, when)
    yield "truncated", good[:-4]
    yield "extended", good + "AAAA"
    yield "too long", "A" * (MAX_CURSOR_CHARS + 1)


# Genuinely signed for the list, but an instant no list can compute with.
ODD_INSTANTS = [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "2026-01-01T00:00:00",  # naive: never one of ours
    "not a time",
]


@pytest.mark.parametrize("route", sorted(LISTS))
async def test_only_a_cursor_of_this_list_and_these_filters_is_accepted(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    session: AsyncSession,
    settings: Settings,
    route: str,
) -> None:
    path, headers = await LISTS[route](client, tokens, session, settings)
    good = signed(settings, path, "2026-01-01T00:00:00+00:00")
    answer = await client.get(path, params={"cursor": good, "limit": 5}, headers=headers)
    assert answer.status_code == 200, answer.text
    for kind, cursor in bad_cursors(settings, path):
        response = await client.get(path, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (kind, response.text)
        assert_problem(response, 422)
    for instant in ODD_INSTANTS:
        response = await client.get(
            path, params={"cursor": signed(settings, path, instant)}, headers=headers
        )
        expected = 422 if route in TIME_SORTED else 200  # a name-sorted list: just a name
        assert response.status_code == expected, (instant, response.text)


async def test_a_real_cursor_works_on_its_own_list_only(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> None:
    for name in ("Alpha", "Beta", "Gamma"):
        created = await client.post(
            "/v1/resources",
            json={"name": name, "category": "guide", "country": "GB"},
            headers=tokens.coordinator,
        )
        assert created.status_code == 201, created.text
    first = (await client.get("/v1/resources?limit=1", headers=tokens.employee)).json()
    cursor = first["next_cursor"]
    assert cursor
    # The same list, another page size: fine. Another list or other filters: 422.
    second = await client.get(f"/v1/resources?limit=2&cursor={cursor}", headers=tokens.employee)
    assert [item["name"] for item in second.json()["items"]] == ["Beta", "Gamma"]
    assert_problem(await client.get(f"/v1/allies?cursor={cursor}", headers=tokens.employee), 422)
    assert_problem(
        await client.get(f"/v1/resources?country=GB&cursor={cursor}", headers=tokens.employee),
        422,
    )
    assert_problem(
        await client.get(f"/v1/resources?cursor={cursor}", headers=tokens.other_org_employee), 422
    )
    filtered = (
        await client.get("/v1/resources?country=GB&limit=1", headers=tokens.employee)
    ).json()
    again = await client.get(
        f"/v1/resources?country=GB&limit=1&cursor={filtered['next_cursor']}",
        headers=tokens.employee,
    )
    assert [item["name"] for item in again.json()["items"]] == ["Beta"]


async def test_the_longest_sort_names_still_fit_a_cursor(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """Names of 200 four-byte characters: the cursor stays within its documented length."""
    for prefix in ("𝔄", "𝔅"):
        created = await client.post(
            "/v1/resources",
            json={"name": prefix * 200, "category": "guide"},
            headers=tokens.coordinator,
        )
        assert created.status_code == 201, created.text
    first = await client.get("/v1/resources?limit=1", headers=tokens.employee)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor
    assert len(cursor) <= MAX_CURSOR_CHARS
    second = await client.get(f"/v1/resources?limit=1&cursor={cursor}", headers=tokens.employee)
    assert second.json()["items"][0]["name"] == "𝔅" * 200


def test_split_cuts_the_extra_row_and_points_after_the_last_one_shown() -> None:
    page = PageRequest(limit=2, cursor=None, key=b"k" * 32, binding=b"list")
    ids = [uuid.uuid4() for _ in range(3)]
    rows = [(f"name {n}", ids[n]) for n in range(3)]
    assert page.fetch == 3
    assert page.split(rows[:2], lambda row: row) == (rows[:2], None)  # the last page
    shown, cursor = page.split(rows, lambda row: row)
    assert shown == rows[:2]
    assert cursor == page.cursor_at("name 1", ids[1])
    assert PageRequest(2, cursor, page.key, page.binding).after_text() == ("name 1", ids[1])
