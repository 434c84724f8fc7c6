"""Authorization matrix (SECURITY.md): every operation × every kind of caller.

The operations come from the app's route table: a route added without a row here fails
``test_every_operation_has_a_row``. Each row starts from a fresh world so a write by one caller never changes what the next one sees (the world is rebuilt after
every write that went through).

One test per row (operation); every cell of the row is checked and all mismatches reported.
Cells: ``OK`` = let through (any answer that is not 401/403/404/405: 2xx, or 409/422 when the
small body is refused on its merits), or an exact status. ``employee`` is the requester of the
world's contact request; ``ally`` is the ally concerned (the request is assigned to them, the
training record and the ``{ally_id}`` are theirs); ``other_ally`` is another active ally.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import text

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.ops.contract import contract_settings
from allyapi.tables import metadata
from tests.allies.factories import active_ally
from tests.helpers import OTHER_ORG, TokenFactory

OK = 0
CALLERS = (
    "none",
    "employee",
    "ally",
    "other_ally",
    "coordinator",
    "analyst",
    "integration",
    "other_org",
)
F = 403  # authenticated, wrong role
N = 404  # not found or not yours (docs/privacy.md, P8)


def row(*cells: int) -> dict[str, int]:
    assert len(cells) == len(CALLERS) - 1
    return dict(zip(CALLERS, (401, *cells), strict=True))


# none is always 401.  employee  ally  other_ally  coordinator  analyst  integration  other_org
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    # allies
    ("POST", "/v1/allies"): row(OK, OK, OK, OK, F, F, OK),
    ("GET", "/v1/allies"): row(OK, OK, OK, OK, F, F, OK),
    ("GET", "/v1/allies/suggestions"): row(OK, OK, OK, OK, F, F, OK),
    ("POST", "/v1/allies/roster-sync"): row(F, F, F, F, F, OK, F),
    ("GET", "/v1/allies/{ally_id}"): row(OK, OK, OK, OK, F, F, N),
    ("POST", "/v1/allies/{ally_id}/approve"): row(F, F, F, OK, F, F, N),
    ("POST", "/v1/allies/{ally_id}/pause"): row(F, OK, F, OK, F, F, N),
    ("POST", "/v1/allies/{ally_id}/resume"): row(F, OK, F, OK, F, F, N),
    ("POST", "/v1/allies/{ally_id}/retire"): row(F, F, F, OK, F, F, N),
    ("GET", "/v1/me/ally-profile"): row(N, OK, OK, N, F, F, N),
    # the right of access: any person's own data (an empty document for no data); a machine
    # client is not a person
    ("GET", "/v1/me/export"): row(OK, OK, OK, OK, OK, F, OK),
    # the programme's audit trail: coordinators of the org (another org's sees its own)
    ("GET", "/v1/audit-events"): row(F, F, F, OK, F, F, OK),
    ("PATCH", "/v1/me/ally-profile"): row(N, OK, OK, N, F, F, N),
    # training
    ("GET", "/v1/training-courses"): row(OK, OK, OK, OK, F, F, OK),
    ("POST", "/v1/training-courses"): row(F, F, F, OK, F, F, OK),
    ("GET", "/v1/training-courses/{course_id}"): row(OK, OK, OK, OK, F, F, N),
    ("PATCH", "/v1/training-courses/{course_id}"): row(F, F, F, OK, F, F, N),
    ("GET", "/v1/training-records"): row(F, OK, OK, OK, F, F, OK),
    ("POST", "/v1/training-records"): row(F, OK, OK, OK, F, F, OK),
    ("POST", "/v1/training-records/batch"): row(F, F, F, OK, F, OK, OK),
    ("GET", "/v1/training-records/{record_id}"): row(F, OK, N, OK, F, F, N),
    ("POST", "/v1/training-records/{record_id}/verify"): row(F, F, F, OK, F, F, N),
    ("DELETE", "/v1/training-records/{record_id}"): row(F, F, F, OK, F, F, N),
    ("GET", "/v1/training/compliance"): row(F, F, F, OK, F, F, OK),
    # resources
    ("GET", "/v1/resources"): row(OK, OK, OK, OK, F, F, OK),
    ("POST", "/v1/resources"): row(F, F, F, OK, F, F, OK),
    ("GET", "/v1/resources/{resource_id}"): row(OK, OK, OK, OK, F, F, N),
    ("PATCH", "/v1/resources/{resource_id}"): row(F, F, F, OK, F, F, N),
    ("DELETE", "/v1/resources/{resource_id}"): row(F, F, F, OK, F, F, N),
    # contact requests: only the requester and the assigned ally ever see one (P2, P3); a
    # token with the coordinator role is refused outright (P2: 403), so the other
    # organisation's caller in these rows is an employee (see caller_headers)
    ("POST", "/v1/contact-requests"): row(OK, OK, OK, F, F, F, OK),
    ("GET", "/v1/contact-requests"): row(F, OK, OK, F, F, F, F),
    ("GET", "/v1/me/contact-requests"): row(OK, OK, OK, F, F, F, OK),
    ("GET", "/v1/contact-requests/{request_id}"): row(OK, OK, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/accept"): row(N, OK, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/decline"): row(N, OK, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/complete"): row(N, OK, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/cancel"): row(OK, N, N, F, F, F, N),
    ("DELETE", "/v1/contact-requests/{request_id}"): row(OK, N, N, F, F, F, N),
    ("GET", "/v1/contact-requests/{request_id}/messages"): row(OK, OK, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/messages"): row(OK, OK, N, F, F, F, N),
    ("GET", "/v1/contact-requests/{request_id}/access-log"): row(OK, N, N, F, F, F, N),
    ("POST", "/v1/contact-requests/{request_id}/feedback"): row(OK, N, N, N, F, F, N),
    # feedback and reports: aggregates only (P6)
    ("POST", "/v1/feedback"): row(OK, OK, OK, OK, F, F, OK),
    ("GET", "/v1/feedback/summary"): row(F, OK, OK, OK, F, F, OK),
    ("GET", "/v1/reports/program"): row(F, F, F, OK, OK, F, OK),
    # report topics: coordinators keep the list; staff and analysts read it
    ("GET", "/v1/topics"): row(OK, OK, OK, OK, OK, F, OK),
    ("POST", "/v1/topics"): row(F, F, F, OK, F, F, OK),
    ("GET", "/v1/topics/{topic_id}"): row(OK, OK, OK, OK, OK, F, N),
    ("PATCH", "/v1/topics/{topic_id}"): row(F, F, F, OK, F, F, N),
    ("DELETE", "/v1/topics/{topic_id}"): row(F, F, F, OK, F, F, N),
    # webhooks
    ("POST", "/v1/webhooks"): row(F, F, F, OK, F, OK, OK),
    ("GET", "/v1/webhooks"): row(F, F, F, OK, F, OK, OK),
    ("DELETE", "/v1/webhooks/{webhook_id}"): row(F, F, F, OK, F, OK, N),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): row(F, F, F, OK, F, OK, N),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): row(F, F, F, N, F, N, N),
    # SCIM provisioning: integration clients only; the other organisation's caller in these
    # rows is its integration client (see caller_headers). Discovery documents are the same
    # for every organisation; a user of another organisation is not found.
    ("GET", "/scim/v2/ServiceProviderConfig"): row(F, F, F, F, F, OK, OK),
    ("GET", "/scim/v2/Schemas"): row(F, F, F, F, F, OK, OK),
    ("GET", "/scim/v2/Schemas/{schema_id}"): row(F, F, F, F, F, OK, OK),
    ("GET", "/scim/v2/ResourceTypes"): row(F, F, F, F, F, OK, OK),
    ("GET", "/scim/v2/ResourceTypes/{name}"): row(F, F, F, F, F, OK, OK),
    ("POST", "/scim/v2/.search"): row(F, F, F, F, F, OK, OK),
    ("GET", "/scim/v2/Users"): row(F, F, F, F, F, OK, OK),
    ("POST", "/scim/v2/Users"): row(F, F, F, F, F, OK, N),
    ("GET", "/scim/v2/Users/{user_id}"): row(F, F, F, F, F, OK, N),
    ("PUT", "/scim/v2/Users/{user_id}"): row(F, F, F, F, F, OK, N),
    ("PATCH", "/scim/v2/Users/{user_id}"): row(F, F, F, F, F, OK, N),
    ("DELETE", "/scim/v2/Users/{user_id}"): row(F, F, F, F, F, OK, N),
}

TODAY = "2026-01-15"
# Small valid bodies, so that a caller who is let through is judged on ownership, not on a 422.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/allies"): {"display_name": "Sam"},
    ("POST", "/v1/allies/roster-sync"): {"subs": ["ally-1", "ally-2"]},
    ("PATCH", "/v1/me/ally-profile"): {"bio": "Happy to listen."},
    ("POST", "/v1/training-courses"): {"name": "Listening skills", "required": False},
    ("PATCH", "/v1/training-courses/{course_id}"): {"provider": "MHFA England"},
    ("POST", "/v1/training-records"): {"course_id": "{course_id}", "completed_on": TODAY},
    ("POST", "/v1/training-records/batch"): {
        "rows": [
            {
                "external_id": "lms-1",
                "sub": "ally-1",
                "course_id": "{course_id}",
                "completed_on": TODAY,
            }
        ]
    },
    ("POST", "/v1/resources"): {"name": "Helpline", "category": "crisis"},
    ("PATCH", "/v1/resources/{resource_id}"): {"hours": "24/7"},
    ("POST", "/v1/contact-requests"): {"topic": "stress", "message": "Could we talk?"},
    ("POST", "/v1/contact-requests/{request_id}/decline"): {"reason": "capacity"},
    ("POST", "/v1/contact-requests/{request_id}/complete"): {"signposted": True, "wellbeing": 4},
    ("POST", "/v1/contact-requests/{request_id}/messages"): {"body": "Thank you"},
    ("POST", "/v1/contact-requests/{request_id}/feedback"): {
        "rating": 5,
        "felt_heard": True,
        "would_recommend": True,
    },
    ("POST", "/v1/feedback"): {"category": "other", "rating": 4},
    ("POST", "/v1/webhooks"): {"url": "https://hooks.example.test/a", "events": ["ally.listed"]},
    ("POST", "/v1/topics"): {"key": "menopause"},
    ("PATCH", "/v1/topics/{topic_id}"): {"label": "Menopause"},
    ("POST", "/scim/v2/Users"): {"userName": "ally-2"},
    ("PUT", "/scim/v2/Users/{user_id}"): {"userName": "ally-1", "active": True},
    ("PATCH", "/scim/v2/Users/{user_id}"): {
        "Operations": [{"op": "replace", "path": "externalId", "value": "okta-1"}]
    },
}


def operations() -> list[tuple[str, str]]:
    """Every /v1 and /scim operation of the app, with path templates as the contract writes
    them."""
    app = create_app(contract_settings())
    found = []
    for context in iter_route_contexts(app.routes):
        if context.path.startswith(("/v1/", "/scim/")):
            path = context.path_format  # ``{record_id:uuid}`` -> ``{record_id}``
            found += [(method, path) for method in sorted(context.methods or ())]
    return sorted(found)


def test_every_operation_has_a_row() -> None:
    missing = [f"{m} {p}" for m, p in operations() if (m, p) not in MATRIX]
    stale = [f"{m} {p}" for m, p in MATRIX if (m, p) not in set(operations())]
    assert missing == [], "add these operations to MATRIX in tests/security/test_authz_matrix.py"
    assert stale == []


def caller_headers(
    tokens: TokenFactory, caller: str, operation: tuple[str, str] | None = None
) -> dict[str, str]:
    """``other_org`` carries the strongest roles the row lets through in its own organisation
    (a coordinator, else an employee), so its 404 shows isolation rather than a role refusal."""
    if caller == "other_org" and operation and operation[1].startswith("/scim/"):
        return tokens.headers("hris-9", "integration", org=OTHER_ORG)
    if caller == "other_org" and operation and MATRIX[operation]["coordinator"] == F:
        return tokens.headers("emp-9", "employee", org=OTHER_ORG)
    return {
        "none": {},
        "employee": tokens.headers("emp-1", "employee"),
        "ally": tokens.headers("ally-1", "employee"),
        "other_ally": tokens.headers("ally-2", "employee"),
        "coordinator": tokens.coordinator,
        "analyst": tokens.analyst,
        "integration": tokens.integration,
        "other_org": tokens.headers("coord-9", "employee", "coordinator", org=OTHER_ORG),
    }[caller]


async def build_world(client: httpx.AsyncClient, tokens: TokenFactory) -> dict[str, str]:
    """ally-1 (concerned) and ally-2 (other), a course, a record of ally-1, a resource, a
    request from emp-1 assigned to ally-1, a webhook, a report topic."""
    coordinator = tokens.coordinator
    ally = await active_ally(client, tokens, "ally-1")
    await active_ally(client, tokens, "ally-2")
    made = {}
    for key, path, body in (
        ("course_id", "/v1/training-courses", {"name": "MHFA", "validity_months": 24}),
        ("resource_id", "/v1/resources", {"name": "Samaritans", "category": "crisis"}),
        ("webhook_id", "/v1/webhooks", BODIES[("POST", "/v1/webhooks")]),
        ("topic_id", "/v1/topics", {"key": "carers"}),
    ):
        response = await client.post(path, json=body, headers=coordinator)
        assert response.status_code == 201, response.text
        made[key] = response.json()["id"]
    record = await client.post(
        "/v1/training-records",
        json={"ally_id": ally["id"], "course_id": made["course_id"], "completed_on": TODAY},
        headers=coordinator,
    )
    assert record.status_code == 201, record.text
    request = await client.post(
        "/v1/contact-requests",
        json={"ally_id": ally["id"], "topic": "stress", "message": "Could we talk?"},
        headers=caller_headers(tokens, "employee"),
    )
    assert request.status_code == 201, request.text
    # The identity provider has looked ally-1 up, which links them as a SCIM user.
    linked = await client.get(
        "/scim/v2/Users", params={"filter": 'userName eq "ally-1"'}, headers=tokens.integration
    )
    assert linked.json()["totalResults"] == 1, linked.text
    return {
        **made,
        "user_id": ally["id"],
        "schema_id": "urn:ietf:params:scim:schemas:core:2.0:User",
        "name": "User",
        "ally_id": ally["id"],
        "record_id": record.json()["id"],
        "request_id": request.json()["id"],
        "delivery_id": str(uuid.uuid4()),
    }


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids) if "{" in value else value
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    return value


async def empty_tables(database: Database) -> None:
    tables = [table.name for table in reversed(metadata.sorted_tables)]
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text("TRUNCATE " + ", ".join(tables) + " CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - our names


def mismatch(response: httpx.Response, expected: int) -> bool:
    if expected == OK:
        return response.status_code in {401, 403, 404, 405}
    kind = (
        "application/scim+json"
        if "/scim/" in response.request.url.path
        else "application/problem+json"
    )
    problem = response.headers.get("content-type", "").startswith(kind)
    return response.status_code != expected or not problem


@pytest.mark.parametrize("operation", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
async def test_matrix_row(
    client: httpx.AsyncClient,
    tokens: TokenFactory,
    database: Database,
    operation: tuple[str, str],
) -> None:
    """One row: each caller in turn, on a world rebuilt whenever a write went through."""
    method, template = operation
    ids = await build_world(client, tokens)
    wrong = []
    for caller in CALLERS:
        response = await client.request(
            method,
            template.format(**ids),
            headers=caller_headers(tokens, caller, operation),
            json=fill(BODIES.get(operation), ids) if method != "GET" else None,
        )
        expected = MATRIX[operation][caller]
        if mismatch(response, expected):
            wrong.append(f"{caller}: expected {expected or 'OK'}, got {response.status_code}")
        if method != "GET" and response.status_code < 300:
            await empty_tables(database)
            ids = await build_world(client, tokens)
    assert wrong == [], f"{method} {template}: " + "; ".join(wrong)
