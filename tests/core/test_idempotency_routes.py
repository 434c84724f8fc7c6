"""``Idempotency-Key`` on every creating POST (docs/integration-guide.md, "Idempotency").

Per route: the same key and body replay the first answer (same status, same id, nothing new,
``Idempotent-Replayed: true``); the same key with another body is a 422; without a key the
create is accepted and a retry creates again or meets the route's own 409, as documented.
``test_every_creating_post_is_decided`` fails when a new creating POST appears without a
decision here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from allyapi.app import create_app
from allyapi.ops.contract import contract_settings
from tests.allies.factories import active_ally, employee
from tests.helpers import TokenFactory

TODAY = "2026-01-15"


@dataclass(frozen=True)
class Create:
    path: str
    who: Callable[[TokenFactory], dict[str, str]]
    body: Callable[[dict[str, str], int], dict[str, Any]]  # (world ids, n) -> the n-th body
    again_without_key: int  # a second identical create without a key: 201 again, or 409


async def _world(client: httpx.AsyncClient, tokens: TokenFactory) -> dict[str, str]:
    ally = await active_ally(client, tokens, "ally-1")
    course = await client.post(
        "/v1/training-courses", json={"name": "MHFA"}, headers=tokens.coordinator
    )
    assert course.status_code == 201, course.text
    return {"ally_id": ally["id"], "course_id": course.json()["id"]}


CREATES: dict[str, Create] = {
    "contact request": Create(
        "/v1/contact-requests",
        lambda t: t.headers("req-1", "employee"),
        lambda ids, n: {"ally_id": ids["ally_id"], "topic": "stress", "message": f"Talk {n}?"},
        201,
    ),
    "ally profile": Create(
        "/v1/allies",
        lambda t: employee(t, "volunteer-1"),
        lambda ids, n: {"display_name": f"Volunteer {n}"},
        409,
    ),
    "webhook": Create(
        "/v1/webhooks",
        lambda t: t.integration,
        lambda ids, n: {"url": f"https://hooks.example.test/{n}", "events": ["ally.listed"]},
        201,
    ),
    "training course": Create(
        "/v1/training-courses",
        lambda t: t.coordinator,
        lambda ids, n: {"name": f"Listening {n}"},
        409,  # course names are unique
    ),
    "training record": Create(
        "/v1/training-records",
        lambda t: t.coordinator,
        lambda ids, n: {
            "ally_id": ids["ally_id"],
            "course_id": ids["course_id"],
            "completed_on": f"2026-01-{10 + n:02d}",
        },
        201,
    ),
    "resource": Create(
        "/v1/resources",
        lambda t: t.coordinator,
        lambda ids, n: {"name": f"Helpline {n}", "category": "crisis"},
        201,
    ),
    "topic": Create(
        "/v1/topics",
        lambda t: t.coordinator,
        lambda ids, n: {"key": f"topic-{n}"},
        409,  # a topic is listed once
    ),
}
# Creating POSTs that take no key, and why (docs/integration-guide.md, "Idempotency").
NO_KEY = {
    "/v1/feedback": "anonymous: a key would link the person to their answer",
    "/v1/contact-requests/{request_id}/feedback": "once per request: a retry is a 409",
    "/v1/contact-requests/{request_id}/messages": "no trace of the person next to the thread",
    "/scim/v2/Users": "SCIM: a second link is a 409 uniqueness",
}


def test_every_creating_post_is_decided() -> None:
    """Every POST answering 201 either honours the key (a row above) or is in NO_KEY."""
    document = create_app(contract_settings()).openapi()
    creating = {
        path
        for path, item in document["paths"].items()
        if "201" in item.get("post", {}).get("responses", {})
    }
    honoured = {
        path
        for path in creating
        if any(
            p["name"] == "Idempotency-Key"
            for p in document["paths"][path]["post"].get("parameters", [])
        )
    }
    assert honoured == {create.path for create in CREATES.values()}
    assert creating - honoured == set(NO_KEY)


@pytest.mark.parametrize("name", list(CREATES))
async def test_same_key_same_body_replays(
    client: httpx.AsyncClient, tokens: TokenFactory, name: str
) -> None:
    create = CREATES[name]
    ids = await _world(client, tokens)
    headers = {**create.who(tokens), "Idempotency-Key": f"key-{name}"}
    first = await client.post(create.path, json=create.body(ids, 1), headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    replay = await client.post(create.path, json=create.body(ids, 1), headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    if "location" in first.headers:
        assert replay.headers["location"] == first.headers["location"]

    other = await client.post(create.path, json=create.body(ids, 2), headers=headers)
    assert other.status_code == 422, other.text
    assert other.headers["content-type"].startswith("application/problem+json")

    empty = await client.post(
        create.path, json=create.body(ids, 3), headers={**headers, "Idempotency-Key": ""}
    )
    assert empty.status_code == 422, empty.text


@pytest.mark.parametrize("name", list(CREATES))
async def test_without_a_key_a_retry_is_a_new_create(
    client: httpx.AsyncClient, tokens: TokenFactory, name: str
) -> None:
    create = CREATES[name]
    ids = await _world(client, tokens)
    headers = create.who(tokens)
    first = await client.post(create.path, json=create.body(ids, 1), headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(create.path, json=create.body(ids, 1), headers=headers)
    assert again.status_code == create.again_without_key, again.text
    assert "idempotent-replayed" not in again.headers
    if again.status_code == 201:
        assert again.json()["id"] != first.json()["id"]
