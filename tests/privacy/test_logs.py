"""P1: nothing the requester is or wrote reaches a log line, even at DEBUG with SQL echo."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.settings import Settings
from tests.helpers import TokenFactory
from tests.privacy.scenario import Story, find_leaks, run_story

LOGGERS = ("", "allyapi", "sqlalchemy.engine", "sqlalchemy.pool", "uvicorn", "httpx", "asyncio")


def test_the_leak_finder_finds_what_it_looks_for() -> None:
    story = Story()
    assert find_leaks(b"...", story) == []
    assert find_leaks(f"x {story.message} y".encode(), story) == ["message"]
    assert find_leaks(story.alias.encode("utf-16-le"), story) == ["alias"]


async def test_logs_at_debug_hold_no_requester_identity_or_plaintext(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    story = await run_story(client, client, session, settings, tokens)

    # SQL statements with their parameters were captured: the scan covers what the app
    # sends to the database, not only what it chooses to log.
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    captured = "\n".join(
        [caplog.text]
        + [repr(record.args) for record in caplog.records]
        + [record.exc_text or "" for record in caplog.records]
    )
    assert find_leaks(captured.encode(), story) == []
