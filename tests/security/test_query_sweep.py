"""No query value makes any GET route answer 5xx, for any role (Hypothesis).

Driven by the contract the app publishes: every GET operation of ``openapi_document()`` and
every parameter it declares, so a new route or a new parameter is swept without touching this
file. For each route and each role (employee, ally, coordinator, analyst, integration), the
path's ids name real rows of a small world (a listed ally, a course and record, a resource, an
accepted request with a message and an access-log entry, a webhook) and the query mixes
values drawn from each parameter's schema with values from the edge of every type (dates of
years 1 and 9999, huge and negative numbers, odd booleans, long and odd text) and cursors:
garbage, and cursors genuinely signed for this list and filters holding odd positions. The
only assertion is that the answer is not a 5xx. Example counts are printed at the end.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.models import today
from allyapi.core.http.pagination import PageRequest, binding_of
from allyapi.core.settings import Settings
from allyapi.ops.contract import openapi_document
from tests.contact_requests.factories import act, create, make_ally, person
from tests.helpers import ORG, TokenFactory
from tests.security.examples import count
from tests.webhooks.factories import PROGRAMME_EVENTS, subscribe

MAX_EXAMPLES = 20
ROLES = ("employee", "ally", "coordinator", "analyst", "integration")
CONTRACT = openapi_document()
ROUTES = sorted(path for path, item in CONTRACT["paths"].items() if "get" in item)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
EDGE_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "NaN",
    "Infinity",
    "9" * 40,
    "true",
    "null",
    "[]",
    "%",
    "%00",
    "\u202e",
    "😀" * 40,
    "x" * 4000,
    "0001-01-01",
    "9999-12-31",
    "0000-00-00",
    "2026-02-29",
    "10000-01-01",
    "1969-12-31",
    "1970-01-01",
    "9998-12-31",
    "00000000-0000-0000-0000-000000000000",
    "../../etc/passwd",
    "' OR 1=1 --",
]
EDGE_DATES = [
    date(1, 1, 1),
    date(1, 1, 7),
    date(1, 3, 1),
    date(1969, 12, 31),
    date(1970, 1, 1),
    date(9998, 12, 31),
    date(9999, 12, 1),
    date(9999, 12, 25),
    date(9999, 12, 31),
]
ODD_POSITIONS = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+00:00",
    "",
    "x" * 200,
]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.rsplit("/", 1)[-1]
    return {**CONTRACT["components"]["schemas"][name], **schema}


def typed(schema: dict[str, Any], ids: list[str]) -> st.SearchStrategy[str]:
    """Values the parameter's own schema describes (and just past its bounds)."""
    schema = _resolve(schema)
    if "enum" in schema:
        return st.sampled_from([str(value) for value in schema["enum"]])
    kind, form = schema.get("type"), schema.get("format")
    if kind == "integer":
        low, high = schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)
        return st.one_of(st.integers(low - 5, high + 5), st.integers()).map(str)
    if kind == "boolean":
        return st.sampled_from(["true", "false", "1", "0", "yes", "off", "TRUE", "maybe"])
    if form == "date":
        return st.one_of(st.dates(), st.sampled_from(EDGE_DATES)).map(date.isoformat)
    if form == "uuid":
        return st.one_of(st.uuids().map(str), st.sampled_from(ids))
    if form == "iana-time-zone":
        return st.sampled_from(["Europe/London", "UTC", "Mars/Olympus", "Etc/GMT+14", "../x"])
    return TEXT


def value_of(schema: dict[str, Any], ids: list[str]) -> st.SearchStrategy[str]:
    """Mostly the parameter's own kind of value (that is where the arithmetic is), then edge
    text and any text."""
    own = typed(schema, ids)
    return st.one_of(own, own, own, st.sampled_from(EDGE_TEXT), TEXT)


@st.composite
def queries(
    draw: st.DrawFn, parameters: list[dict[str, Any]], ids: list[str]
) -> tuple[dict[str, str], str | None]:
    """Some of the route's query parameters with drawn values; the cursor's sort value, if the
    cursor is to be signed for exactly this list and these filters."""
    query: dict[str, str] = {}
    for parameter in parameters:
        if parameter["in"] == "query" and draw(st.booleans()):
            query[parameter["name"]] = draw(value_of(parameter["schema"], ids))
    signed_position = None
    if "cursor" in {p["name"] for p in parameters} and draw(st.booleans()):
        signed_position = draw(st.one_of(st.sampled_from(ODD_POSITIONS), TEXT))
    return query, signed_position


@pytest.fixture
async def world(
    client: httpx.AsyncClient, tokens: TokenFactory, session: AsyncSession, settings: Settings
) -> dict[str, str]:
    """One of everything the GET routes read, so path ids name real rows."""
    robin = await make_ally(session, settings, "robin")
    coordinator = tokens.coordinator
    course = await client.post(
        "/v1/training-courses",
        json={"name": "Listening", "validity_months": 12},
        headers=coordinator,
    )
    record = await client.post(
        "/v1/training-records",
        json={
            "ally_id": str(robin.id),
            "course_id": course.json()["id"],
            "completed_on": today().isoformat(),
        },
        headers=coordinator,
    )
    resource = await client.post(
        "/v1/resources", json={"name": "EAP", "category": "eap"}, headers=coordinator
    )
    request = await create(client, tokens.employee, ally_id=str(robin.id))
    await act(client, request["id"], "accept", person(tokens, "robin"))
    await client.get(f"/v1/contact-requests/{request['id']}", headers=person(tokens, "robin"))
    await client.post(
        f"/v1/contact-requests/{request['id']}/messages",
        json={"body": "hello"},
        headers=tokens.employee,
    )
    webhook = await subscribe(client, coordinator, events=PROGRAMME_EVENTS)
    ids = {
        "ally_id": str(robin.id),
        "course_id": course.json()["id"],
        "record_id": record.json()["id"],
        "resource_id": resource.json()["id"],
        "request_id": request["id"],
        "webhook_id": webhook["id"],
    }
    assert all(ids.values()), ids
    return ids


def headers_of(role: str, tokens: TokenFactory) -> dict[str, str]:
    return person(tokens, "robin") if role == "ally" else getattr(tokens, role)


def concrete(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    while "{" in path:  # an id this world does not know: any id (a 404 is fine)
        start, end = path.index("{"), path.index("}")
        path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
    return path


SWEEP = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),  # fixtures are shared by a test's examples
)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES)
@SWEEP
@given(data=st.data())
async def test_no_query_value_is_a_server_error(
    app: FastAPI,
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    settings: Settings,
    world: dict[str, str],
    route: str,
    role: str,
    data: st.DataObject,
) -> None:
    parameters = CONTRACT["paths"][route]["get"].get("parameters", [])
    path = concrete(route, world)
    headers = headers_of(role, tokens)
    query, position = data.draw(queries(parameters, list(world.values())), label="query")
    if position is not None:
        binding = binding_of(ORG, path, list(query.items()))
        page = PageRequest(1, None, settings.cursor_key, binding)
        query = {**query, "cursor": page.cursor_at(position, uuid.uuid4())}
    response = await client.get(path, params=query, headers=headers)
    count(f"route sweep ({len(ROUTES)} GET routes x {len(ROLES)} roles)")
    assert response.status_code < 500, (route, role, query, response.text)
