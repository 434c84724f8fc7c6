"""Builders for contact-request tests: allies straight into the database, requests via the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequestKey
from allyapi.contact_requests.sealing import key_aad
from allyapi.core.privacy.crypto import Cipher, DataKey
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from tests import factories
from tests.helpers import ORG, TokenFactory

MESSAGE = "My manager keeps piling on work and I cannot sleep"
CONTACT = "+44 7700 900123"
ALIAS = "Sam"
BODY: dict[str, Any] = {"topic": "stress", "message": MESSAGE}


async def make_ally(
    session: AsyncSession, settings: Settings, sub: str, *, name: str | None = None, **fields: Any
) -> Ally:
    """The shared builder (tests/factories.py), named after ``sub`` so lists read clearly."""
    return await factories.make_ally(session, settings, sub, name=name or f"Ally {sub}", **fields)


async def fresh(session: AsyncSession) -> None:
    """Read what is committed now: detach the test's objects (they keep their loaded values),
    then end the session's transaction, whose snapshot (SQLite) may predate the app's writes."""
    session.expunge_all()
    await session.rollback()


async def load_of(session: AsyncSession, ally_id: uuid.UUID) -> int:
    await fresh(session)
    ally = await session.get(Ally, ally_id)
    assert ally is not None
    return ally.open_requests


async def make_resource(
    session: AsyncSession, name: str, category: str, country: str | None, org: str = ORG
) -> Resource:
    resource = Resource(org_id=org, name=name, category=category, country=country)
    session.add(resource)
    await session.commit()
    return resource


def person(tokens: TokenFactory, sub: str, **claims: Any) -> dict[str, str]:
    """An employee-only token (allies are employees too)."""
    return tokens.headers(sub, "employee", **claims)


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    response = await client.post("/v1/contact-requests", json={**BODY, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def act(
    client: httpx.AsyncClient,
    request_id: str,
    action: str,
    headers: dict[str, str],
    json: dict[str, Any] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/contact-requests/{request_id}/{action}", json=json, headers=headers
    )


async def data_key_of(session: AsyncSession, settings: Settings, request_id: uuid.UUID) -> DataKey:
    """The request's own data key, opened with the configured keys (as the app does)."""
    row = await session.get(ContactRequestKey, request_id)
    assert row is not None
    return Cipher(settings.data_key_ring).open_data_key(row.key_sealed, key_aad(request_id))
