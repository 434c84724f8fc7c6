"""Seed the performance database: several organisations, the largest at company scale.

    .venv/bin/python bench/seed.py                       # 10,000 allies, 1,000,000 requests
    .venv/bin/python bench/seed.py --allies 2000 --requests 100000
    .venv/bin/python bench/seed.py --smoke               # tiny, seconds

Recreates the database named in ALLYAPI_BENCH_PERF_URL (default
postgresql+asyncpg://postgres@127.0.0.1/allyapi_perf), migrates it with Alembic and loads rows
with asyncpg ``copy_records_to_table``, printing a progress line. Keys come from
``load_settings()`` with ALLYAPI_DATA_DIR (default ``.allyapi/perf``), the same keys the
benchmark's servers use, so the data is what the app itself would have written:

- organisation ``perf-big``: ``--allies`` listed allies (active, accepting, a current verified
  record of the one required course; languages, topics and locations varied, ``en`` on ~60%)
  and ``--requests`` contact requests whose message, contact detail and alias are real
  AES-GCM ciphertext bound to their row (core.crypto) and whose ``requester_ref`` is the real
  HMAC of a requester (core.pseudonym);
- organisation ``perf-small``: 10 listed allies (the "10 vs 10,000 allies" comparison);
- ``--orgs`` - 2 more organisations with a tenth of the allies and a hundredth of the requests,
  so the big org's rows share tables and indexes with other tenants, as in production.

Choices: seeded history is closed (completed, cancelled, expired, declined), so every ally's
``open_requests`` load counter and the requester caps start at zero and agree with the rows;
``content_purge_at`` is left empty so a server's purge job never spends a benchmark rewriting a
million rows (the benchmark runs its servers with the jobs off anyway). Allies take up to 50
open requests (the schema's maximum) so the create benchmark does not run out of capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from allyapi.core.auth.pseudonym import requester_ref, subject_ref
from allyapi.core.auth.tokens import dev_subject
from allyapi.core.db.migrations import upgrade
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings, load_settings

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/allyapi_perf"
DEFAULT_DATA_DIR = ".allyapi/perf"  # ignored by git, like the dev data dir
BIG, SMALL = "perf-big", "perf-small"
SMALL_ALLIES = 10
BATCH = 20_000
DAYS = 730
LANGUAGES = ["de", "fr", "es", "nl", "pl", "it", "pt", "sv", "tr", "ar"]
TOPICS = ["stress", "burnout", "anxiety", "grief", "family", "workload", "conflict", "health"]
TOPICS += ["money", "sleep", "loneliness", "identity", "lgbtq", "disability", "caring"]
LOCATIONS = ["London", "Berlin", "Paris", "Madrid", "Amsterdam", "Warsaw", "Lisbon", "Remote"]
ZONES = ["Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Warsaw"]
DEPARTMENTS = ["Engineering", "Sales", "Finance", "People", "Legal", "Support", "Marketing"]
FIRST = ["Alex", "Sam", "Robin", "Kim", "Noor", "Jo", "Ari", "Mika", "Lee", "Sasha", "Ren"]
CLOSED = ["completed"] * 14 + ["cancelled", "expired", "declined"]
URGENCIES = ["low"] * 3 + ["normal"] * 6 + ["high"]

ALLY_COLUMNS = [
    "id", "org_id", "created_at", "updated_at", "version", "subject_ref", "display_name",
    "pronouns", "job_title", "department", "location", "timezone", "languages", "topics", "bio",
    "contact_channels", "availability", "accepting", "status", "max_open_requests",
    "open_requests", "search_text", "department_key", "approved_at",
]  # fmt: skip
REQUEST_COLUMNS = [
    "id", "org_id", "created_at", "updated_at", "version", "requester_ref", "ally_id", "topic",
    "urgency", "language", "preferred_channel", "anonymous", "status", "message_sealed",
    "contact_detail_sealed", "alias_sealed", "declined_by", "signposted_resource_ids",
    "signposted", "wellbeing", "expires_at", "accepted_at", "closed_at",
]  # fmt: skip
COURSE_COLUMNS = ["id", "org_id", "created_at", "updated_at", "version", "name", "validity_months"]
COURSE_COLUMNS += ["required"]
RECORD_COLUMNS = [
    "id", "org_id", "created_at", "updated_at", "version", "ally_id", "course_id",
    "completed_on", "expires_on", "verified", "verified_at",
]  # fmt: skip


@dataclass(frozen=True)
class OrgPlan:
    org: str
    allies: int
    requests: int


def bench_url() -> str:
    return os.environ.get("ALLYAPI_BENCH_PERF_URL", DEFAULT_URL)


def bench_settings() -> Settings:
    """The keys shared by the seed, both servers and the load scripts."""
    data_dir = Path(os.environ.get("ALLYAPI_DATA_DIR", DEFAULT_DATA_DIR))
    return load_settings(data_dir=data_dir, env="development")


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def plans(allies: int, requests: int, orgs: int) -> list[OrgPlan]:
    result = [OrgPlan(BIG, allies, requests), OrgPlan(SMALL, SMALL_ALLIES, SMALL_ALLIES * 10)]
    for n in range(max(orgs - 2, 0)):
        result.append(OrgPlan(f"perf-org-{n + 1}", max(allies // 10, 1), requests // 100))
    return result[: max(orgs, 1)]


async def recreate(url: str) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(dsn(target.set(database="postgres").render_as_string(False)))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    width = 30
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "-" * (width - filled)
    sys.stdout.write(f"\r{label:<28} [{bar}] {done:,}/{total:,} ({rate:,.0f} rows/s)   ")
    sys.stdout.flush()


def ally_row(settings: Settings, org: str, i: int, rng: random.Random) -> tuple[Any, ...]:
    now = datetime.now(UTC)
    languages = (["en"] if rng.random() < 0.6 else []) + rng.sample(LANGUAGES, rng.randint(0, 2))
    languages = languages or [rng.choice(LANGUAGES)]
    topics = rng.sample(TOPICS, rng.randint(1, 4))
    name = f"{rng.choice(FIRST)} {i:05d}"
    title, dept, location = "Ally and engineer", rng.choice(DEPARTMENTS), rng.choice(LOCATIONS)
    bio = f"Happy to listen about {', '.join(topics)}."
    search = "\n".join([name, title, bio, " ".join(topics), location, dept]).lower()
    windows = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in (1, 3, 5)]
    ref = subject_ref(settings.pseudonym_key_bytes, "ally", dev_subject(settings, org, f"ally-{i}"))
    return (
        uuid.uuid4(), org, now, now, 1, ref, name,
        rng.choice([None, "she/her", "he/him", "they/them"]), title, dept,
        location, rng.choice(ZONES), json.dumps(languages), json.dumps(topics), bio,
        json.dumps([{"kind": "chat", "detail": None}]), json.dumps(windows), True, "active", 50,
        0, search, dept.lower(), now,
    )  # fmt: skip


async def seed_org_allies(
    conn: asyncpg.Connection, settings: Settings, plan: OrgPlan, rng: random.Random
) -> list[uuid.UUID]:
    now, today = datetime.now(UTC), date.today()
    course = uuid.uuid4()
    await conn.copy_records_to_table(
        "training_courses",
        records=[(course, plan.org, now, now, 1, "Allyship foundations", 24, True)],
        columns=COURSE_COLUMNS,
    )
    started, ids = time.perf_counter(), []
    for start in range(0, plan.allies, BATCH):
        rows = [
            ally_row(settings, plan.org, i, rng)
            for i in range(start, min(start + BATCH, plan.allies))
        ]
        await conn.copy_records_to_table("allies", records=rows, columns=ALLY_COLUMNS)
        completed = today - timedelta(days=rng.randrange(1, 300))
        records = [
            (uuid.uuid4(), plan.org, now, now, 1, row[0], course, completed,
             completed + timedelta(days=730), True, now)
            for row in rows
        ]  # fmt: skip
        await conn.copy_records_to_table(
            "training_records", records=records, columns=RECORD_COLUMNS
        )
        ids += [row[0] for row in rows]
        progress(f"{plan.org} allies", len(ids), plan.allies, started)
    print()
    return ids


def request_row(
    cipher: Cipher, org: str, ref: str, ally: uuid.UUID, created: datetime, rng: random.Random
) -> tuple[Any, ...]:
    row_id = uuid.uuid4()
    status = rng.choice(CLOSED)
    anonymous = rng.random() < 0.3
    accepted = created + timedelta(hours=rng.randrange(1, 48)) if status == "completed" else None
    closed = (accepted or created) + timedelta(days=rng.randrange(1, 10))

    def seal(field: str, text: str | None) -> str | None:
        return (
            None if text is None else cipher.seal(text, aad_for("contact_requests", row_id, field))
        )

    message = "I would like to talk about something that has been on my mind at work. " * 3
    return (
        row_id, org, created, closed, 1, ref, ally, rng.choice(TOPICS), rng.choice(URGENCIES),
        "en", "thread" if anonymous else "email", anonymous, status, seal("message", message),
        seal("contact_detail", None if anonymous else f"person{rng.randrange(10**6)}@example.com"),
        seal("alias", "Jay"), "[]", "[]", (rng.random() < 0.35) if status == "completed" else None,
        rng.randint(1, 5) if status == "completed" else None, created + timedelta(hours=72),
        accepted, closed,
    )  # fmt: skip


async def seed_org_requests(
    conn: asyncpg.Connection,
    settings: Settings,
    plan: OrgPlan,
    allies: list[uuid.UUID],
    rng: random.Random,
) -> None:
    if not plan.requests or not allies:
        return
    cipher = Cipher(settings.data_key_ring)
    key = settings.pseudonym_key_bytes
    refs = [
        requester_ref(key, dev_subject(settings, plan.org, f"person-{i}"))
        for i in range(max(plan.requests // 5, 10))
    ]
    now = datetime.now(UTC) - timedelta(days=11)  # closed_at stays in the past
    # Oldest first, as real requests arrive: the table's physical order follows created_at.
    ages = sorted((rng.randrange(DAYS * 86400) for _ in range(plan.requests)), reverse=True)
    started, done = time.perf_counter(), 0
    while done < plan.requests:
        rows = [
            request_row(cipher, plan.org, rng.choice(refs), rng.choice(allies),
                        now - timedelta(seconds=age), rng)
            for age in ages[done : done + BATCH]
        ]  # fmt: skip
        await conn.copy_records_to_table("contact_requests", records=rows, columns=REQUEST_COLUMNS)
        done += len(rows)
        progress(f"{plan.org} contact_requests", done, plan.requests, started)
    print()


async def load(url: str, settings: Settings, org_plans: list[OrgPlan]) -> None:
    rng = random.Random(6)  # reproducible data, not security
    conn = await asyncpg.connect(dsn(url))
    try:
        for plan in org_plans:
            allies = await seed_org_allies(conn, settings, plan, rng)
            await seed_org_requests(conn, settings, plan, allies, rng)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--allies", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=4, help="organisations (at least 2 useful)")
    parser.add_argument("--smoke", action="store_true", help="tiny data: 200 allies, 400 requests")
    args = parser.parse_args(argv)
    if args.smoke:
        # 200 allies x 50 slots: a smoke run's creates (ours and the baseline's) never fill them.
        args.allies, args.requests, args.orgs = 200, 400, 3
    url, settings = bench_url(), bench_settings()
    started = time.perf_counter()
    asyncio.run(recreate(url))
    upgrade(url)  # Alembic runs its own event loop
    org_plans = plans(args.allies, args.requests, args.orgs)
    asyncio.run(load(url, settings, org_plans))
    summary = ", ".join(f"{p.org}: {p.allies:,} allies/{p.requests:,} requests" for p in org_plans)
    print(f"seeded {summary} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
