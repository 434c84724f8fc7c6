"""A client whose body cap fits a full 1000-row batch (see test_batch.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from allyapi.app import create_app
from allyapi.core.database import Database
from allyapi.core.settings import Settings


@pytest.fixture
async def roomy_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": 1024 * 1024}), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
