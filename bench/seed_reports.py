"""Seed one organisation with many contact requests and feedback rows on PostgreSQL (COPY).

    .venv/bin/python bench/seed_reports.py --requests 1000000 --feedback 100000

Creates (or, with --fresh, recreates) the database named in ALLYAPI_BENCH_URL (default
postgresql+asyncpg://postgres@127.0.0.1/allyapi_bench), migrates it with Alembic, then loads
rows with asyncpg ``copy_records_to_table`` in batches, printing a progress line. Requests
are spread over the last two years; ~70% are completed with a debrief; feedback is given on
completed requests a few days after they were made. Every row is loaded as already arrived
in the aggregates (docs/aggregates.md): its events numbered in the order they happened and
marked with the same code the arrival pass uses (aggregates/marks.py), so reports rank and
release real data without a backlog to work through first. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from allyapi.aggregates.calendar import TopicCalendar
from allyapi.aggregates.marks import Arrival, CellHistory, mark
from allyapi.aggregates.sources import FeedbackSource, Row, cohort_cells
from allyapi.core.db.migrations import upgrade

CALENDAR = TopicCalendar.defaults()


class Arrivals:
    """One source's arrival numbers and marks, handed out in the order rows are loaded."""

    def __init__(self) -> None:
        self.seq = 0
        self.history = CellHistory()
        self.kept_from = date.min

    def arrive(self, row: Row, cells: dict[Any, Any]) -> tuple[int, int]:
        if (row.day - self.kept_from).days > 2 * KEEP_DAYS:
            self._forget_before(row.day - timedelta(days=KEEP_DAYS))
        self.seq += 1
        [marks] = mark([Arrival(row.person, cells, row.commented)], self.history)
        return self.seq, marks

    def _forget_before(self, day: date) -> None:
        def recent(cell: Any) -> bool:
            key = cell[1]
            return (key[0] if isinstance(key, tuple) else key) >= day

        self.history.seen = {entry for entry in self.history.seen if recent(entry[0])}
        self.kept_from = day


DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/allyapi_bench"
ORG = "bench"
TOPICS = ["stress", "burnout", "anxiety", "grief", "family", "workload", "conflict", "health"]
TOPICS += ["money", "sleep", "loneliness", "identity"]
URGENCIES = ["low"] * 3 + ["normal"] * 6 + ["high"]
STATUSES = ["completed"] * 14 + ["accepted"] * 2 + ["pending", "declined", "cancelled", "expired"]
BATCH = 50_000
DAYS = 730

REQUEST_COLUMNS = [
    "id", "org_id", "created_at", "updated_at", "version", "requester_ref", "ally_id", "topic",
    "urgency", "anonymous", "status", "declined_by", "signposted_resource_ids", "signposted",
    "wellbeing", "accepted_at", "closed_at",
]  # fmt: skip
ARRIVAL_COLUMNS = [
    "created_seq", "created_marks", "accepted_seq", "accepted_marks", "accept_hours",
    "completed_seq", "completed_marks", "wellbeing_seq", "wellbeing_marks",
]  # fmt: skip
FEEDBACK_COLUMNS = [
    "id", "org_id", "request_id", "ally_id", "topic", "rating", "felt_heard",
    "would_recommend", "created_on", "seq", "marks",
]  # fmt: skip
KEEP_DAYS = 70  # arrivals' history older than two months cannot share a cell any more
ALLY_COLUMNS = [
    "id", "org_id", "created_at", "updated_at", "version", "subject_ref", "display_name",
    "languages", "topics", "contact_channels", "availability", "accepting", "status",
    "max_open_requests", "open_requests", "search_text",
]  # fmt: skip


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def prepare(url: str, fresh: bool) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(dsn(target.set(database="postgres").render_as_string(False)))
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if exists and fresh:
            await admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
        if not exists or fresh:
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stdout.write(f"\r{label}: {done:,}/{total:,} ({rate:,.0f} rows/s)   ")
    sys.stdout.flush()


async def seed_allies(conn: asyncpg.Connection, count: int) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    rows = [
        (
            uuid.uuid4(), ORG, now, now, 1, hashlib.sha256(f"ally{i}".encode()).hexdigest(),
            f"Ally {i}", "[]", "[]", "[]", "[]", True, "active", 3, 0, "",
        )
        for i in range(count)
    ]  # fmt: skip
    await conn.copy_records_to_table("allies", records=rows, columns=ALLY_COLUMNS)
    return [row[0] for row in rows]


def request_row(
    rng: random.Random, refs: list[str], allies: list[uuid.UUID], created: datetime
) -> tuple[Any, ...]:
    status = rng.choice(STATUSES)
    answered = status in ("completed", "accepted")
    accepted = created + timedelta(hours=rng.expovariate(1 / 12)) if answered else None
    done = status == "completed"
    closed = accepted + timedelta(days=rng.randrange(1, 10)) if done and accepted else None
    return (
        uuid.uuid4(), ORG, created, closed or accepted or created, 1, rng.choice(refs),
        rng.choice(allies), rng.choice(TOPICS), rng.choice(URGENCIES), rng.random() < 0.3,
        status, "[]", "[]", (rng.random() < 0.35) if done else None,
        rng.randint(1, 5) if done else None, accepted, closed,
    )  # fmt: skip


def arrivals_of(request: tuple[Any, ...], sources: dict[str, Arrivals]) -> tuple[Any, ...]:
    """The arrival columns of a request row (its events arrive in creation order here)."""
    row_id, created, ref, ally, topic, urgency = (request[i] for i in (0, 2, 5, 6, 7, 8))
    accepted, status = request[15], request[10]
    row = Row(row_id, created.date(), ref, urgency, topic)
    cells = cohort_cells(row, CALENDAR)
    values: list[Any] = [*sources["created"].arrive(row, cells), None, 0, None, None, 0, None, 0]
    if accepted is not None:
        values[2:4] = sources["accepted"].arrive(row, cells)
        values[4] = round((accepted - created).total_seconds() / 3600, 1)
    if status == "completed":
        values[5:7] = sources["completed"].arrive(row, cells)
        by_ally = Row(row_id, created.date(), str(ally), urgency, topic)
        values[7:9] = sources["wellbeing"].arrive(by_ally, cells)
    return tuple(values)


async def seed_requests(
    conn: asyncpg.Connection,
    total: int,
    allies: list[uuid.UUID],
    rng: random.Random,
    sources: dict[str, Arrivals],
) -> list[tuple[Any, ...]]:
    """Loads the requests; returns (id, ally, topic, created, requester, urgency) of the
    completed ones."""
    refs = [hashlib.sha256(f"person{i}".encode()).hexdigest() for i in range(max(total // 5, 10))]
    # Oldest first, as real requests arrive: the table's physical order follows created_at.
    now = datetime.now(UTC)
    ages = sorted((rng.randrange(DAYS * 86400) for _ in range(total)), reverse=True)
    completed: list[tuple[Any, ...]] = []
    started, done = time.perf_counter(), 0
    while done < total:
        rows = [
            request_row(rng, refs, allies, now - timedelta(seconds=age))
            for age in ages[done : done + BATCH]
        ]
        rows = [row + arrivals_of(row, sources) for row in rows]
        await conn.copy_records_to_table(
            "contact_requests", records=rows, columns=REQUEST_COLUMNS + ARRIVAL_COLUMNS
        )
        completed += [(r[0], r[6], r[7], r[2], r[5], r[8]) for r in rows if r[10] == "completed"]
        done += len(rows)
        progress("contact_requests", done, total, started)
    print()
    return completed


async def seed_feedback(
    conn: asyncpg.Connection,
    total: int,
    completed: list[tuple[Any, ...]],
    rng: random.Random,
    arrivals: Arrivals,
) -> None:
    chosen = rng.sample(completed, min(total, len(completed)))
    today = date.today()
    given = sorted(
        (min(today, (row[3] + timedelta(days=rng.randrange(0, 14))).date()), row) for row in chosen
    )
    source = FeedbackSource()
    started = time.perf_counter()
    for offset in range(0, len(given), BATCH):
        rows = []
        for day, (request_id, ally_id, topic, _, ref, urgency) in given[offset : offset + BATCH]:
            row = Row(uuid.uuid4(), day, ref, urgency, topic, str(ally_id))
            seq, marks = arrivals.arrive(row, source.cells(row, CALENDAR))
            rows.append(
                (
                    row.id, ORG, request_id, ally_id, topic, rng.randint(1, 5),
                    rng.random() < 0.85, rng.random() < 0.8, day, seq, marks,
                )
            )  # fmt: skip
        await conn.copy_records_to_table("request_feedback", records=rows, columns=FEEDBACK_COLUMNS)
        progress("request_feedback", offset + len(rows), len(given), started)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--feedback", type=int, default=100_000)
    parser.add_argument("--allies", type=int, default=300)
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database")
    args = parser.parse_args()
    url = os.environ.get("ALLYAPI_BENCH_URL", DEFAULT_URL)
    started = time.perf_counter()
    asyncio.run(prepare(url, args.fresh))
    upgrade(url)  # Alembic runs its own event loop
    asyncio.run(load(url, args))
    print(f"seeded org {ORG!r} in {time.perf_counter() - started:.1f} s")


async def load(url: str, args: argparse.Namespace) -> None:
    rng = random.Random(4)  # reproducible data, not security
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("DELETE FROM request_feedback WHERE org_id = $1", ORG)
        await conn.execute("DELETE FROM contact_requests WHERE org_id = $1", ORG)
        await conn.execute("DELETE FROM allies WHERE org_id = $1", ORG)
        await conn.execute("DELETE FROM arrival_clocks WHERE org_id = $1", ORG)
        allies = await seed_allies(conn, args.allies)
        names = ("created", "accepted", "completed", "wellbeing", "feedback")
        sources = {name: Arrivals() for name in names}
        completed = await seed_requests(conn, args.requests, allies, rng, sources)
        await seed_feedback(conn, args.feedback, completed, rng, sources["feedback"])
        # Later arrivals (a server's arrival pass) number on from here.
        await conn.copy_records_to_table(
            "arrival_clocks",
            records=[(ORG, name, arrivals.seq) for name, arrivals in sources.items()],
            columns=["org_id", "source", "last_seq"],
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
