"""Small helpers shared by all test domains (kept tiny on purpose)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from allyapi.core.auth.pseudonym import subject_ref
from allyapi.core.auth.tokens import dev_subject, mint_dev_token
from allyapi.core.settings import Settings

ORG = "acme"
OTHER_ORG = "globex"


class TokenFactory:
    """Bearer headers for a person in a role: ``tokens.headers("emp-1", "employee")``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def token(self, sub: str, *roles: str, org: str = ORG, **claims: Any) -> str:
        return mint_dev_token(self.settings, sub=sub, org=org, roles=list(roles), **claims)

    def headers(self, sub: str, *roles: str, org: str = ORG, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, *roles, org=org, **claims)}"}

    # The usual cast of a test.
    @property
    def employee(self) -> dict[str, str]:
        return self.headers("emp-1", "employee", country="GB", department="Marketing")

    @property
    def coordinator(self) -> dict[str, str]:
        return self.headers("coord-1", "employee", "coordinator")

    @property
    def analyst(self) -> dict[str, str]:
        return self.headers("analyst-1", "analyst")

    @property
    def integration(self) -> dict[str, str]:
        return self.headers("hris-1", "integration")

    @property
    def other_org_coordinator(self) -> dict[str, str]:
        return self.headers("coord-9", "employee", "coordinator", org=OTHER_ORG)

    @property
    def other_org_employee(self) -> dict[str, str]:
        return self.headers("emp-9", "employee", org=OTHER_ORG)

    def ally_ref(self, sub: str, org: str = ORG) -> str:
        return subject_ref(
            self.settings.pseudonym_key_bytes, "ally", dev_subject(self.settings, org, sub)
        )


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    return body


async def backend_pid(engine: AsyncEngine) -> int:
    """The PostgreSQL backend of the connection ``engine``'s pool hands out next."""
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate_backend(url: str, pid: int) -> None:
    """What a server restart or an administrator does to one connection."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
