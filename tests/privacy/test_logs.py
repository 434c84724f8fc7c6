"""Nothing that identifies a requester, or links their actions, reaches a log line at any level.

The loggers that would print SQL parameters or rows are capped (core/logging.py), every engine
hides parameters, and a full scenario at DEBUG is scanned for every text, pseudonym, id, key
and sub it produced: a pseudonym or a request id in a log line next to a caller is exactly the
link the pseudonyms exist to prevent (the same rate-limit key before a contact request and
before "anonymous" programme feedback).
"""

from __future__ import annotations

import logging
from datetime import date

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.settings import Settings
from tests.helpers import ORG, TokenFactory
from tests.privacy.scenario import FullStory, Story, find_leaks, run_full_story

TEST_CLIENT_URL = "http://testserver/"
LOGGERS = (
    "",
    "allyapi",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "uvicorn",
    "httpx",
    "httpcore",
    "asyncio",
)


def test_the_leak_finder_finds_what_it_looks_for() -> None:
    story = Story()
    assert find_leaks(b"...", story) == []
    assert find_leaks(f"x {story.message} y".encode(), story) == ["message"]
    assert find_leaks(story.alias.encode("utf-16-le"), story) == ["alias"]


def traces(full: FullStory, settings: Settings, tokens: TokenFactory) -> dict[str, str]:
    """Every value of the run that must appear in no log line."""
    key = settings.pseudonym_key_bytes
    story = full.story
    week = date.today().isocalendar()
    values = full.texts() | {f"id of {label}": value for label, value in full.ids.items()}
    for who, sub in (("requester", story.sub), ("ally", story.ally_sub)):
        person = dev_subject(settings, ORG, sub)
        values[f"{who} requester_ref"] = requester_ref(key, person)
        for purpose in ("ally", "idem", "rate", f"feedback:{week.year}-W{week.week:02d}"):
            values[f"{who} {purpose} ref"] = subject_ref(key, purpose, person)
    values |= {
        "Idempotency-Key": full.idempotency_key,
        "requester token": tokens.token(story.sub, "employee"),
        "pseudonym key": settings.pseudonym_key or "",
        "jwt secret": settings.jwt_secret or "",
    }
    values |= {f"data key {kid}": raw.hex() for kid, raw in settings.data_key_ring}
    return values


def captured_text(caplog: pytest.LogCaptureFixture) -> str:
    """Each record's line, raw arguments and exception text: the app's records only (the
    test's own httpx client logs the URLs it calls, ids included; the server never sees that)."""
    records = [
        record
        for record in caplog.records
        if not (record.name == "httpx" and TEST_CLIENT_URL in record.getMessage())
    ]
    return "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in records
    )


async def test_a_full_scenario_at_debug_logs_no_identity_id_key_or_text(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    full = await run_full_story(client, session, settings, tokens)

    captured = captured_text(caplog)
    leaked = [label for label, value in traces(full, settings, tokens).items() if value in captured]
    assert leaked == []
    assert find_leaks(captured.encode(), full.story) == []
    # SQL statements were captured: the scan covered what the app sends to the database.
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    assert "[SQL parameters hidden" in captured


async def test_driver_loggers_stay_capped_whatever_level_they_are_given(
    client: httpx.AsyncClient, tokens: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy logs every row it reads at DEBUG, aiosqlite every call with its arguments:
    the cap drops those records even when a configuration sets the loggers to DEBUG."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    response = await client.get("/v1/allies", headers=tokens.employee)
    assert response.status_code == 200
    below_info = [
        record.name
        for record in caplog.records
        if record.levelno < logging.INFO
        and record.name.startswith(("sqlalchemy.engine", "aiosqlite", "asyncpg"))
    ]
    assert below_info == []
