"""After an erasure nothing stored carries or links the erased request, in any form.

An erased request used to leave: its ``Idempotency-Key`` row (the creator's keyed reference,
the request id and a microsecond time; a replay answered "…was erased"), the requester's
counter row at zero forever, the webhook deliveries with the id and creation time, and on
SQLite the old pages in the write-ahead log until a checkpoint. Now every such row goes, what
remains is kept under a new random id, and SQLite's log is checkpointed: the database's bytes
(the SQLite file and its -wal, or a ``pg_dump``) hold the erased id in no form (canonical,
hex, raw bytes, either case) and its sealed text in no form.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from allyapi.contact_requests.models import AccessLogEntry, ContactMessage, ContactRequest
from allyapi.core.db.session import Database
from allyapi.core.http.idempotency import IdempotencyKey
from allyapi.core.settings import Settings
from allyapi.webhooks.models import WebhookDelivery
from tests.factories import make_ally
from tests.helpers import TokenFactory
from tests.privacy.test_stored_bytes import postgres_dump, read_with_sidecars
from tests.webhooks.factories import subscribe

BASE = "/v1/contact-requests"


@dataclass
class Erased:
    id: uuid.UUID
    key_header: dict[str, str]
    body: dict[str, object]
    sealed: list[str] = field(default_factory=list)  # ciphertexts it had before the erasure

    def id_forms(self) -> dict[str, bytes]:
        text = str(self.id)
        return {
            "canonical": text.encode(),
            "canonical upper": text.upper().encode(),
            "hex": self.id.hex.encode(),
            "hex upper": self.id.hex.upper().encode(),
            "bytes": self.id.bytes,
        }


async def erase_a_request_with_every_link(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> Erased:
    """A request with an Idempotency-Key, a subscriber's delivery, a thread message and an
    ally's read in its access log, then erased. Checks every link existed before."""
    ally = await make_ally(session, settings, sub="links-ally")
    await subscribe(client, tokens.integration, events=["contact_request.assigned"])
    me = tokens.headers("links-requester", "employee")
    keyed = {**me, "Idempotency-Key": f"erase-{uuid.uuid4()}"}
    body: dict[str, object] = {
        "ally_id": str(ally.id),
        "topic": "stress",
        "message": f"forget this {uuid.uuid4().hex}",
        "contact_detail": "+44 7700 900999",
        "alias": "Kit",
    }
    created = await client.post(BASE, json=body, headers=keyed)
    assert created.status_code == 201, created.text
    request_id = uuid.UUID(created.json()["id"])
    path = f"{BASE}/{request_id}"
    read = await client.get(path, headers=tokens.headers("links-ally", "employee"))
    assert read.status_code == 200, read.text
    posted = await client.post(f"{path}/messages", json={"body": "and this"}, headers=me)
    assert posted.status_code == 201, posted.text

    erased = Erased(request_id, keyed, body)
    await session.rollback()
    row = await session.get(ContactRequest, request_id, populate_existing=True)
    assert row is not None
    assert row.message_sealed is not None
    erased.sealed.append(row.message_sealed)
    erased.sealed += list(await session.scalars(sa.select(col(ContactMessage.body_sealed))))
    assert await links(session, erased) == {
        "idempotency key": 1,
        "requester counter": 1,
        "webhook delivery": 1,
        "access log": 1,
        "thread": 1,
    }
    await session.rollback()
    assert (await client.delete(path, headers=me)).status_code == 204
    return erased


async def links(session: AsyncSession, erased: Erased) -> dict[str, int]:
    """Rows that carry the erased id or belong to its requester, per kind."""
    await session.rollback()
    body_has_id = col(WebhookDelivery.body).contains(str(erased.id))
    queries = {
        "idempotency key": sa.select(sa.func.count()).select_from(IdempotencyKey),
        "requester counter": sa.text("SELECT count(*) FROM requester_loads"),
        "webhook delivery": sa.select(sa.func.count()).where(body_has_id),
        "access log": sa.select(sa.func.count()).select_from(AccessLogEntry),
        "thread": sa.select(sa.func.count()).select_from(ContactMessage),
    }
    return {
        name: int((await session.execute(query)).scalar_one()) for name, query in queries.items()
    }


async def test_no_row_carries_or_links_an_erased_request(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    erased = await erase_a_request_with_every_link(client, session, settings, tokens)

    assert await links(session, erased) == dict.fromkeys(
        ("idempotency key", "requester counter", "webhook delivery", "access log", "thread"), 0
    )
    assert await session.get(ContactRequest, erased.id) is None
    # A replay of its key is an unknown key: it creates anew (and says nothing of the past).
    again = await client.post(BASE, json=erased.body, headers=erased.key_header)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert uuid.UUID(again.json()["id"]) != erased.id


def wal_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def stored_bytes(database: Database) -> bytes:
    """Everything the database holds: on SQLite the file and its -wal as they are (no
    checkpoint by the test: the erasure must have done it), on PostgreSQL a ``pg_dump``."""
    if database.dialect == "sqlite":
        path = make_url(database.url).database
        assert path
        return await asyncio.to_thread(read_with_sidecars, Path(path))
    return await postgres_dump(database)


async def test_the_database_holds_the_erased_id_and_text_in_no_form(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    database: Database,
) -> None:
    erased = await erase_a_request_with_every_link(client, session, settings, tokens)
    if database.dialect == "sqlite":
        wal = Path(str(make_url(database.url).database) + "-wal")
        assert await asyncio.to_thread(wal_size, wal) == 0  # checkpointed and truncated

    stored = await stored_bytes(database)

    found = [name for name, form in erased.id_forms().items() if form in stored]
    assert found == []
    assert [value for value in erased.sealed if value.encode() in stored] == []
    for plaintext in (erased.body["message"], erased.body["contact_detail"], "and this"):
        assert str(plaintext).encode() not in stored
    # Not vacuous: the bytes hold the statistics that remain, and the test's own rows.
    assert b"links" not in stored  # (no sub either, ever)
    remaining = await session.scalar(
        sa.select(col(ContactRequest.id)).where(col(ContactRequest.erased_at).is_not(None))
    )
    assert remaining is not None
    forms = Erased(remaining, {}, {}).id_forms()
    assert forms["hex" if database.dialect == "sqlite" else "canonical"] in stored
