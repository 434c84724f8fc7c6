"""The baseline: bare FastAPI + asyncpg, raw SQL, no ORM, no auth — the practical limit.

    .venv/bin/python -m uvicorn baseline:app --app-dir bench --port 8101 --no-access-log

It serves the two hot paths with the SQL our app emits (captured with SQLAlchemy's echo from
``GET /v1/allies?language=en&limit=20`` and ``POST /v1/contact-requests``; see
bench/README.md), so the ratio ours/baseline measures what our layers cost, not what the
database costs:

- ``GET /v1/allies``: the directory page with the *listed* clause, the language filter and
  the keyset order, ``limit + 1`` rows, answered as the same public-profile JSON.
- ``POST /v1/contact-requests`` with an ``ally_id``: the same statements in the same order
  (write rate-limit upsert in autocommit; then, in one transaction, the idempotency claim
  upsert, the requester-cap upsert, the ally-capacity UPDATE ... RETURNING the profile, the
  INSERT and the webhook subscription lookup) and the same crypto: three AES-GCM seals bound to the row and
  the HMAC references. The comparison is "the same SQL"; encryption and HMACs are part of what
  the request must do (docs/privacy.md, P1, P4), so the baseline pays them too.

What it leaves out is what we are measuring the cost of: JWT verification (the caller is the
``X-Bench-Org`` / ``X-Bench-Sub`` headers, trusted), pydantic validation of bodies and
responses, the ORM, dependency injection, middleware (security headers, body cap, metrics)
and problem+json errors. Never deploy it: it trusts headers and checks nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response

from allyapi.core.auth.pseudonym import Subject, requester_ref, subject_ref
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import load_settings

LISTED = """allies.status = 'active' AND allies.accepting IS true AND NOT (EXISTS (
  SELECT 1 FROM training_courses
  WHERE training_courses.org_id = allies.org_id AND training_courses.required IS true
    AND NOT (EXISTS (SELECT 1 FROM training_records
      WHERE training_records.ally_id = allies.id
        AND training_records.course_id = training_courses.id
        AND training_records.verified IS true
        AND (training_records.expires_on IS NULL OR training_records.expires_on > $1::DATE)))))"""
PUBLIC = (
    "allies.id, allies.display_name, allies.pronouns, allies.job_title, allies.department, "
    "allies.location, allies.timezone, allies.languages, allies.topics, allies.bio, "
    "allies.contact_channels, allies.availability, allies.accepting"
)
# The directory's listed clause has a planner fence in its inner EXISTS
# (allies/listing_repository.py).
LISTED_PAGE = LISTED.replace("$1::DATE)))))", "$1::DATE) LIMIT ALL OFFSET 0))))")
# An employee's page selects exactly the public profile's columns (allies/service.py).
DIRECTORY = f"""SELECT {PUBLIC} FROM allies
WHERE allies.org_id = $2 AND {LISTED_PAGE}
  AND (allies.languages @> CAST(jsonb_build_array($3::VARCHAR) AS JSONB))
ORDER BY allies.display_name, allies.id LIMIT $4"""
DIRECTORY_ALL = f"""SELECT {PUBLIC} FROM allies
WHERE allies.org_id = $2 AND {LISTED_PAGE}
ORDER BY allies.display_name, allies.id LIMIT $3"""
# The same count as ours (core/http/ratelimit.py): per policy, the window on the database's clock.
RATE = (
    "INSERT INTO rate_limit_buckets (key, policy, window_start, count) VALUES ($1, $2, "
    "CAST(floor(extract(epoch FROM now())) AS BIGINT) / 60 * 60, 1) "
    "ON CONFLICT (key, policy, window_start) DO UPDATE SET count = rate_limit_buckets.count + 1 "
    "RETURNING count"
)
IDEM_CLAIM = (
    "INSERT INTO idempotency_keys (org_id, caller_ref, key, operation, request_hash, "
    "resource_id, status_code, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 201, "
    "$7, $8) ON CONFLICT (org_id, caller_ref, key) DO UPDATE SET operation = "
    "excluded.operation, request_hash = excluded.request_hash, resource_id = "
    "excluded.resource_id, status_code = excluded.status_code, created_at = "
    "excluded.created_at, expires_at = excluded.expires_at "
    "WHERE idempotency_keys.expires_at <= excluded.created_at RETURNING idempotency_keys.key"
)
LOAD_CLAIM = (
    "INSERT INTO requester_loads (org_id, requester_ref, open_requests) VALUES ($1, $2, 1) "
    "ON CONFLICT (org_id, requester_ref) DO UPDATE SET open_requests = "
    "requester_loads.open_requests + 1 WHERE requester_loads.open_requests < $3 "
    "RETURNING requester_loads.open_requests"
)
ALLY_CLAIM = f"""UPDATE allies SET open_requests = allies.open_requests + 1
WHERE allies.org_id = $2 AND allies.id = $3
  AND allies.open_requests < allies.max_open_requests AND {LISTED} RETURNING {PUBLIC}"""
INSERT = """INSERT INTO contact_requests (id, org_id, ally_id, topic, urgency, language,
  preferred_channel, anonymous, created_at, expires_at, message_sealed, contact_detail_sealed,
  alias_sealed, status, accepted_at, closed_at, requester_ref, version, updated_at,
  declined_by, signposted_resource_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
  $12, $13, 'pending', NULL, NULL, $14, 1, $9, '[]', '[]')"""
HOOKS = (
    "SELECT id FROM webhook_subscriptions WHERE org_id = $1 "
    "AND events @> CAST(jsonb_build_array($2::VARCHAR) AS JSONB)"
)
JSON_FIELDS = ("languages", "topics", "contact_channels", "availability")
PUBLIC_FIELDS = [part.strip().removeprefix("allies.") for part in PUBLIC.split(",")]

settings = load_settings()
cipher = Cipher(settings.data_key_ring)
KEY = settings.pseudonym_key_bytes
MAX_OPEN = settings.max_open_requests
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
        await conn.fetchval(RATE, subject_ref(KEY, "rate", Subject(org, sub, None)), "writes")
        async with conn.transaction():
            return await _create(conn, org, sub, key, body, raw, now)


async def _create(
    conn: asyncpg.Connection, org: str, sub: str, key: str, body: Any, raw: bytes, now: datetime
) -> Response:
    person = Subject(org, sub, None)  # the legacy issuer
    caller, ref = subject_ref(KEY, "idem", person), requester_ref(KEY, person)
    ally_id, today, row_id = uuid.UUID(body["ally_id"]), now.date(), uuid.uuid4()
    digest = hashlib.sha256(raw).hexdigest()
    claimed = await conn.fetchval(
        IDEM_CLAIM, org, caller, key, "contact_requests.create", digest, row_id, now,
        now + timedelta(hours=24),
    )  # fmt: skip
    if claimed is None:
        return answer({"status": 422}, 422)
    if await conn.fetchval(LOAD_CLAIM, org, ref, MAX_OPEN) is None:
        return answer({"status": 429}, 429)
    ally = await conn.fetchrow(ALLY_CLAIM, today, org, ally_id)
    if ally is None:
        return answer({"status": 409}, 409)

    def seal(field: str) -> str | None:
        text = body.get(field)
        return (
            None if text is None else cipher.seal(text, aad_for("contact_requests", row_id, field))
        )

    await conn.execute(
        INSERT, row_id, org, ally_id, body["topic"], body["urgency"], body.get("language"),
        body.get("preferred_channel"), bool(body.get("anonymous")), now,
        now + timedelta(hours=72), seal("message"), seal("contact_detail"), seal("alias"), ref,
    )  # fmt: skip
    await conn.fetch(HOOKS, org, "contact_request.assigned")
    view = {
        "id": str(row_id), "status": "pending", "ally_id": str(ally_id), "topic": body["topic"],
        "urgency": body["urgency"], "language": body.get("language"),
        "message": body.get("message"), "contact_detail": body.get("contact_detail"),
        "alias": body.get("alias"), "anonymous": bool(body.get("anonymous")),
        "created_at": now.isoformat(), "ally": public(ally), "resources": [],
    }  # fmt: skip
    return answer(view, 201)
