"""An install upgraded from 0007 keeps everyone's history (docs/identity.md).

The database is brought to 0007, rows are written the way the code of that revision wrote
them (references ``HMAC(key, org:sub)`` and ``HMAC(key, ally|org:sub)``, computed here from
that formula, not from today's code), then upgraded to head and served with a second
identity provider added next to the one that made the rows. The people of the legacy issuer
find their requests, profiles and open-request count; the same ``sub`` at the new issuer is
someone else and finds nothing. A pause of that time counts as a coordinator's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from allyapi.allies.models import Ally
from allyapi.app import create_app
from allyapi.contact_requests.models import ContactRequest, RequesterLoad
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.models import table_of, utcnow
from allyapi.core.db.session import Database, make_engine
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import OidcIssuer, Settings
from allyapi.training.models import TrainingCourse, TrainingRecord
from tests.helpers import ORG, TokenFactory, assert_problem
from tests.migrations.scratch import scratch_database
from tests.oidc.idp import mint, new_ec, new_rsa, public_pem

OLD_IDP, NEW_IDP = "https://old.idp.example", "https://new.idp.example"
OLD_KEY, NEW_KEY = new_rsa(), new_ec()
MESSAGE = "written before the upgrade"


def old_reference(key: bytes, text: str) -> str:
    """The one formula of revision 0007's core/auth/pseudonym.py."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path) as url:
        yield url


def rows_of_0007(settings: Settings) -> dict[str, Any]:
    key, now = settings.pseudonym_key_bytes, utcnow()
    robin = Ally(
        org_id=ORG,
        subject_ref=old_reference(key, f"ally|{ORG}:robin"),
        display_name="Robin",
        languages=["en"],
        topics=["stress"],
        status="active",
        max_open_requests=10,
        open_requests=1,
        approved_at=now,
    )
    pat = Ally(
        org_id=ORG,
        subject_ref=old_reference(key, f"ally|{ORG}:pat"),
        display_name="Pat",
        status="paused",
    )
    request = ContactRequest(
        org_id=ORG,
        requester_ref=old_reference(key, f"{ORG}:bob"),
        ally_id=robin.id,
        topic="stress",
        urgency="normal",
        status="pending",
        expires_at=now + timedelta(hours=72),
    )
    request.message_sealed = Cipher(settings.data_key_ring).seal(
        MESSAGE, aad_for("contact_requests", request.id, "message")
    )
    load = RequesterLoad(org_id=ORG, requester_ref=request.requester_ref, open_requests=1)
    course = TrainingCourse(org_id=ORG, name="Listening")
    record = TrainingRecord(
        org_id=ORG, ally_id=robin.id, course_id=course.id, completed_on=now.date(), verified=True
    )
    return {
        "allies": [robin, pat],
        "contact_requests": [request],
        "requester_loads": [load],
        "training_courses": [course],
        "training_records": [record],
    }


MODELS: dict[str, Any] = {
    "allies": Ally,
    "contact_requests": ContactRequest,
    "requester_loads": RequesterLoad,
    "training_courses": TrainingCourse,
    "training_records": TrainingRecord,
}


def write_at_0007(url: str, rows: dict[str, Any]) -> None:
    """Core inserts of exactly the columns the database has at revision 0007 (read from it, so
    columns later migrations add to the models are left out)."""

    async def run() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as connection:
                for name, objects in rows.items():
                    present = await connection.run_sync(
                        lambda sync, table=name: {
                            c["name"] for c in sa.inspect(sync).get_columns(table)
                        }
                    )
                    columns = table_of(MODELS[name]).columns
                    table = sa.table(
                        name, *(sa.column(c.name, c.type) for c in columns if c.name in present)
                    )
                    values = [
                        {k: v for k, v in obj.model_dump().items() if k in present}
                        for obj in objects
                    ]
                    await connection.execute(sa.insert(table), values)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(params=["hs256", "identity-provider"])
def upgraded(
    request: pytest.FixtureRequest, scratch_url: str, settings: Settings
) -> tuple[Settings, str]:
    """Rows of 0007, upgraded; the settings of the install afterwards, and who made the rows:
    the HS256 issuer, or the one identity provider of an install without it."""
    upgrade(scratch_url, "0007")
    write_at_0007(scratch_url, rows_of_0007(settings))
    upgrade(scratch_url)
    new_idp = OidcIssuer(
        issuer=NEW_IDP, algorithms=["ES256"], public_key=public_pem(NEW_KEY), orgs=[ORG]
    )
    old_idp = OidcIssuer(
        issuer=OLD_IDP, algorithms=["RS256"], public_key=public_pem(OLD_KEY), orgs=[ORG]
    )
    common = {"database_url": scratch_url, "jobs_interval_seconds": 0}
    if request.param == "hs256":
        after = {**common, "jwt_orgs": [ORG], "oidc_issuers": [new_idp]}
        return settings.model_copy(update=after), "hs256"
    # Production with identity providers only: the old one first, the new one appended.
    after = {**common, "env": "production", "jwt_secret": None, "oidc_issuers": [old_idp, new_idp]}
    return settings.model_copy(update=after), OLD_IDP


@pytest.fixture
async def http(upgraded: tuple[Settings, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings, _ = upgraded
    app = create_app(settings, Database(settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.database.dispose()


def person(issuer: str, settings: Settings, sub: str, tokens: TokenFactory) -> dict[str, str]:
    if issuer == "hs256":
        return tokens.headers(sub, "employee")
    key = OLD_KEY if issuer == OLD_IDP else NEW_KEY
    return {"Authorization": "Bearer " + mint(key, issuer, sub=sub, org=ORG, roles=["employee"])}


async def test_the_legacy_issuers_people_keep_their_history_and_nobody_else_gets_it(
    http: httpx.AsyncClient, upgraded: tuple[Settings, str], tokens: TokenFactory
) -> None:
    settings, maker = upgraded
    assert settings.legacy_issuer == (settings.jwt_issuer if maker == "hs256" else OLD_IDP)
    bob, robin = person(maker, settings, "bob", tokens), person(maker, settings, "robin", tokens)

    mine = (await http.get("/v1/me/contact-requests", headers=bob)).json()["items"]
    assert len(mine) == 1
    request_id = mine[0]["id"]
    assert (await http.get(f"/v1/contact-requests/{request_id}", headers=bob)).json()[
        "message"
    ] == MESSAGE
    assigned = (await http.get("/v1/contact-requests", headers=robin)).json()["items"]
    assert [item["id"] for item in assigned] == [request_id]
    assert (await http.get("/v1/me/ally-profile", headers=robin)).json()["display_name"] == "Robin"
    # Rows referring to the rebuilt allies table kept their links (SQLite rebuilds it).
    records = (await http.get("/v1/training-records", headers=robin)).json()["items"]
    assert len(records) == 1

    # The same subs at the identity provider added with the upgrade are other people.
    other_bob = person(NEW_IDP, settings, "bob", tokens)
    other_robin = person(NEW_IDP, settings, "robin", tokens)
    assert (await http.get("/v1/me/contact-requests", headers=other_bob)).json()["items"] == []
    assert_problem(await http.get(f"/v1/contact-requests/{request_id}", headers=other_bob), 404)
    assert_problem(await http.get("/v1/me/ally-profile", headers=other_robin), 404)

    # The open request made before the upgrade still counts towards bob's cap of 3.
    body = {"topic": "stress", "message": "again"}
    for _ in range(2):
        created = await http.post("/v1/contact-requests", json=body, headers=bob)
        assert created.status_code == 201, created.text
    assert_problem(await http.post("/v1/contact-requests", json=body, headers=bob), 429)
    # ... and bob can still erase it.
    erased = await http.delete(f"/v1/contact-requests/{request_id}", headers=bob)
    assert erased.status_code == 204, erased.text


async def test_a_pause_from_before_the_upgrade_is_a_coordinators(
    http: httpx.AsyncClient, upgraded: tuple[Settings, str], tokens: TokenFactory
) -> None:
    settings, maker = upgraded
    pat = person(maker, settings, "pat", tokens)
    own = (await http.get("/v1/me/ally-profile", headers=pat)).json()
    assert (own["status"], own["paused_by"]) == ("paused", "coordinator")
    assert_problem(await http.post(f"/v1/allies/{own['id']}/resume", headers=pat), 403)
    assert uuid.UUID(own["id"])
