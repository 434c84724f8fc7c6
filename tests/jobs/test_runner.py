"""The in-server periodic runner and ``allyapi purge``."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.app import create_app
from allyapi.contact_requests.models import ContactRequest, RequestStatus
from allyapi.core.db.models import utcnow
from allyapi.core.db.session import Database
from allyapi.core.privacy.crypto import Cipher
from allyapi.core.settings import Settings
from allyapi.jobs.registry import all_jobs
from allyapi.jobs.runner import JobRunner, PeriodicRunner
from tests.factories import make_ally, make_request, process_env


async def test_a_failing_run_is_logged_without_data_and_the_next_run_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("row 42: message 'I am not coping'")

    runner = PeriodicRunner("flaky", flaky, 0.01)
    with caplog.at_level(logging.WARNING, logger="allyapi.background"):
        runner.start()
        for _ in range(200):
            if calls >= 3:
                break
            await asyncio.sleep(0.01)
        await runner.stop()

    assert calls >= 3
    assert runner.failures == 1
    assert "background job flaky failed: RuntimeError" in caplog.text
    assert "coping" not in caplog.text
    assert "42" not in caplog.text


async def test_stop_waits_for_a_run_in_progress_and_then_no_run_starts() -> None:
    started = asyncio.Event()
    finished: list[bool] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.append(True)

    runner = PeriodicRunner("slow", slow, 0.01, jitter=0)
    runner.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    await runner.stop()
    runs = runner.runs
    assert finished  # the run in progress completed
    await asyncio.sleep(0.05)
    assert runner.runs == runs


def test_interval_zero_disables_the_runner(settings: Settings) -> None:
    disabled = settings.model_copy(update={"jobs_interval_seconds": 0})
    names = {runner.name for runner in JobRunner(all_jobs(), disabled, Database(disabled)).runners}
    assert names == {  # on their own interval
        "webhook-deliverer",
        "webhook-training-expiring",
        "webhook-listing-changes",
    }
    quiet = disabled.model_copy(update={"webhook_interval_seconds": 0})
    assert JobRunner(all_jobs(), quiet, Database(quiet)).runners == []
    with pytest.raises(ValueError, match="positive"):
        PeriodicRunner("never", asyncio.sleep, 0)


def test_every_job_has_its_own_name() -> None:
    names = [job.name for job in all_jobs()]
    assert len(names) == len(set(names))


async def test_the_app_lifespan_runs_the_jobs_and_stops_them(
    session: AsyncSession, settings: Settings
) -> None:
    cipher = Cipher(settings.data_key_ring)
    ally = await make_ally(session, settings, open_requests=1)
    request = await make_request(
        session, settings, cipher, ally=ally, expires_at=utcnow() - timedelta(seconds=1)
    )
    fast = settings.model_copy(update={"jobs_interval_seconds": 0.05})
    app = create_app(fast, Database(fast))  # its own engine: the lifespan disposes it

    async with app.router.lifespan_context(app):
        for _ in range(100):
            row = await session.get(ContactRequest, request.id, populate_existing=True)
            assert row is not None
            if row.status == RequestStatus.expired:
                break
            await asyncio.sleep(0.05)
    assert row.status == RequestStatus.expired


async def test_cli_purge_runs_every_job_once_and_prints_counts(
    session: AsyncSession, settings: Settings
) -> None:
    cipher = Cipher(settings.data_key_ring)
    ally = await make_ally(session, settings, open_requests=1)
    await make_request(
        session, settings, cipher, ally=ally, expires_at=utcnow() - timedelta(seconds=1)
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "allyapi",
        "purge",
        env=process_env(settings),
        cwd=settings.data_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "expired pending requests: 1",
        "purged closed requests: 0",
        "deleted idempotency keys: 0",
        "deleted audit events past retention: 0",
        "contributions arrived in the aggregates: 1",  # the request's creation
    ]
