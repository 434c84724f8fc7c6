"""Batch after batch, one short transaction each: how every set-based job drains its work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.db.session import Database

MAX_BATCHES = 50  # per job per run; the rest waits for the next run

BatchJob = Callable[[AsyncSession], Awaitable[int]]


async def drain(database: Database, job: BatchJob, max_batches: int = MAX_BATCHES) -> int:
    """Run ``job`` batch after batch, one transaction each, until a batch changes nothing."""
    total = 0
    for _ in range(max_batches):
        async with database.sessionmaker() as session, session.begin():
            changed = await job(session)
        total += changed
        if changed == 0:
            break
    return total
