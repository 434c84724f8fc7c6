"""The baseline: bare FastAPI + asyncpg, raw SQL, no ORM, no auth — the practical limit.

    .venv/bin/python -m uvicorn baseline:app --app-dir bench --port 8101 --no-access-log

It serves the two hot paths with the SQL our app emits (captured with SQLAlchemy's echo from
``GET /v1/allies?language=en&limit=20`` and ``POST /v1/contact-requests``; see
bench/README.md), so the ratio ours/baseline measures what our layers cost, not what the
database costs:

- ``GET /v1/allies``: the directory page with the *listed* clause, the language filter and
  the keyset order, ``limit + 1`` rows, answered as the same public-profile JSON.
- ``POST /v1/contact-requests`` with an ``ally_id``: our one statement (the write count,
  claim, requester cap, ally slot, row, data key, webhook deliveries as data-modifying
  CTEs), compiled to text by SQLAlchemy once per day from the very function
  our app uses and run with plain asyncpg in autocommit; and the same crypto: a data key per
  request, three AES-GCM seals bound to the row, the data key sealed under the ring, the
  HMAC references. The comparison is "the same SQL"; encryption and HMACs are part of what
  the request must do (docs/privacy.md, P1, P4), so the baseline pays them too.

What it leaves out is what we are measuring the cost of: JWT verification (the caller is the
``X-Bench-Org`` / ``X-Bench-Sub`` headers, trusted), pydantic validation of bodies and
responses, the ORM, dependency injection, middleware (security headers, body cap, metrics)
and problem+json errors. Never deploy it: it trusts headers and checks nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from allyapi.allies.repository import PUBLIC_PROFILE_COLUMNS
from allyapi.contact_requests.fast_create_repository import create_statement
from allyapi.core.auth.pseudonym import Subject, requester_ref, subject_ref
from allyapi.core.db.driver import DriverStatement
from allyapi.core.privacy.crypto import Cipher, DataKey, aad_for
from allyapi.core.settings import load_settings

LISTED = """allies.status = 'active' AND allies.accepting IS true AND NOT (EXISTS (
  SELECT 1 FROM training_courses
  WHERE training_courses.org_id = allies.org_id AND training_courses.required IS true
    AND NOT (EXISTS (SELECT 1 FROM training_records
      WHERE training_records.ally_id = allies.id
        AND training_records.course_id = training_courses.id
        AND training_records.verified IS true
        AND (training_records.expires_on IS NULL OR training_records.expires_on > $1::DATE)))))"""
# The public profile's columns, in the order our directory selects them.
PUBLIC = ", ".join(f"allies.{name}" for name in PUBLIC_PROFILE_COLUMNS)
# The directory's listed clause has a planner fence in its inner EXISTS
# (allies/listing_repository.py).
LISTED_PAGE = LISTED.replace("$1::DATE)))))", "$1::DATE) LIMIT ALL OFFSET 0))))")
# An employee's page selects exactly the public profile's columns (allies/directory.py).
DIRECTORY = f"""SELECT {PUBLIC} FROM allies
WHERE allies.org_id = $2 AND {LISTED_PAGE}
  AND (allies.languages @> CAST(jsonb_build_array($3::VARCHAR) AS JSONB))
ORDER BY allies.display_name, allies.id LIMIT $4"""
DIRECTORY_ALL = f"""SELECT {PUBLIC} FROM allies
WHERE allies.org_id = $2 AND {LISTED_PAGE}
ORDER BY allies.display_name, allies.id LIMIT $3"""
# The create is our one statement (contact_requests/fast_create_repository.py), compiled to
# text once per day by SQLAlchemy for the asyncpg dialect, then run here with plain asyncpg.
COLUMNS = (
    "alias_sealed", "ally_id", "anonymous", "contact_detail_sealed", "created_at", "declined_by",
    "expires_at", "id", "language", "message_sealed", "org_id", "preferred_channel",
    "requester_ref", "signposted_resource_ids", "status", "topic", "updated_at", "urgency",
    "version", "accepted_at", "closed_at",
)  # fmt: skip
JSON_FIELDS = ("languages", "topics", "contact_channels", "availability")
PUBLIC_FIELDS = [part.strip().removeprefix("allies.") for part in PUBLIC.split(",")]

settings = load_settings()
cipher = Cipher(settings.data_key_ring)
KEY = settings.pseudonym_key_bytes
MAX_OPEN = settings.max_open_requests
LIMIT = settings.rate_limit_writes_per_minute
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool
    url = os.environ["ALLYAPI_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=settings.db_pool_size)
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def public(row: asyncpg.Record) -> dict[str, Any]:
    out = {name: row[name] for name in PUBLIC_FIELDS}
    out["id"] = str(out["id"])
    for name in JSON_FIELDS:
        out[name] = json.loads(out[name])
    return out


def answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


@app.get("/v1/allies")
async def directory(request: Request, language: str | None = None, limit: int = 20) -> Response:
    org = request.headers["x-bench-org"]
    assert pool is not None
    today = datetime.now(UTC).date()
    async with pool.acquire() as conn:
        if language:
            rows = await conn.fetch(DIRECTORY, today, org, language, limit + 1)
        else:
            rows = await conn.fetch(DIRECTORY_ALL, today, org, limit + 1)
    items = [public(row) for row in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        cursor = f"{last['display_name']}|{last['id']}"
    return answer({"items": items, "next_cursor": cursor})


@app.post("/v1/contact-requests")
async def create(request: Request) -> Response:
    org, sub = request.headers["x-bench-org"], request.headers["x-bench-sub"]
    key = request.headers["idempotency-key"]
    raw = await request.body()
    body = json.loads(raw)
    assert pool is not None
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        return await _create(conn, org, sub, key, body, raw, now)  # one statement, autocommit


@lru_cache(maxsize=2)
def statement(today: date) -> DriverStatement:
    return DriverStatement.compile(
        create_statement(today, True, True, tuple(sorted(COLUMNS))), asyncpg_dialect.dialect()
    )


async def _create(
    conn: asyncpg.Connection, org: str, sub: str, key: str, body: Any, raw: bytes, now: datetime
) -> Response:
    person = Subject(org, sub, None)  # the legacy issuer
    caller, ref = subject_ref(KEY, "idem", person), requester_ref(KEY, person)
    ally_id, today, row_id = uuid.UUID(body["ally_id"]), now.date(), uuid.uuid4()
    digest = hmac.new(KEY, raw, hashlib.sha256).hexdigest()
    data_key = DataKey.generate()

    def seal(field: str) -> str | None:
        text = body.get(field)
        return data_key.seal_optional(text, aad_for("contact_requests", row_id, field))

    row = {
        "id": row_id, "org_id": org, "ally_id": ally_id, "topic": body["topic"],
        "urgency": body["urgency"], "language": body.get("language"),
        "preferred_channel": body.get("preferred_channel"),
        "anonymous": bool(body.get("anonymous")), "created_at": now,
        "expires_at": now + timedelta(hours=72), "message_sealed": seal("message"),
        "contact_detail_sealed": seal("contact_detail"), "alias_sealed": seal("alias"),
        "status": "pending", "accepted_at": None, "closed_at": None, "requester_ref": ref,
        "version": 1, "updated_at": now, "declined_by": [], "signposted_resource_ids": [],
    }  # fmt: skip
    event_id = uuid.uuid4()
    event = {
        "id": str(event_id), "type": "contact_request.assigned", "org": org,
        "created_at": now.isoformat(), "data": {"contact_request_id": str(row_id)},
    }  # fmt: skip
    params = {f"r_{name}": value for name, value in row.items()}
    params.update(
        load_org=org, load_ref=ref, cap=MAX_OPEN, slot_org=org, slot_ally=ally_id,
        key_sealed=cipher.seal_data_key(data_key, aad_for("contact_request_keys", row_id, "key")),
        event_id=event_id, event_type="contact_request.assigned",
        event_body=json.dumps(event, separators=(",", ":"), sort_keys=True),
        k_org_id=org, k_caller_ref=caller, k_key=key, k_operation="contact_requests.create",
        k_request_hash=digest, k_resource_id=row_id, k_status_code=201, k_created_at=now,
        k_expires_at=now + timedelta(hours=24),
        key=subject_ref(KEY, "rate", person), policy="writes", rate_limit=LIMIT,
    )  # fmt: skip
    compiled = statement(today)
    try:
        ally = await conn.fetchrow(compiled.sql, *compiled.arguments(params))
    except asyncpg.DivisionByZeroError:
        return answer({"status": 409}, 409)
    if ally is None or ally["id"] is None:
        return answer({"status": 409}, 409)
    view = {
        "id": str(row_id), "status": "pending", "ally_id": str(ally_id), "topic": body["topic"],
        "urgency": body["urgency"], "language": body.get("language"),
        "message": body.get("message"), "contact_detail": body.get("contact_detail"),
        "alias": body.get("alias"), "anonymous": bool(body.get("anonymous")),
        "created_at": now.isoformat(), "ally": public(ally), "resources": [],
    }  # fmt: skip
    return answer(view, 201)
