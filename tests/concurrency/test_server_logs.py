"""docs/privacy.md, P1, in real server processes: a full story split across two processes
running at DEBUG (uvicorn, our loggers, SQL with parameters) leaves no requester data in their
output."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.settings import Settings
from tests.concurrency.conftest import Server
from tests.helpers import TokenFactory
from tests.privacy.scenario import find_leaks, run_story

pytestmark = pytest.mark.postgres_only


async def test_server_output_holds_no_requester_identity_or_plaintext(
    two_servers: list[Server], session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    first, second = two_servers
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=30) as requester_side,
        httpx.AsyncClient(base_url=second.base_url, timeout=30) as ally_side,
    ):
        story = await run_story(requester_side, ally_side, session, settings, tokens)

    for server in two_servers:
        output = server.log_bytes()
        assert b"POST /v1/contact-requests" in output  # the requests were served (and logged)
        assert b"sqlalchemy.engine" in output  # DEBUG really included SQL and parameters
        assert find_leaks(output, story) == [], server.base_url
