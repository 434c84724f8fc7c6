"""A contact request to a named ally in one statement (PostgreSQL): the create's hot path.

The create's rules are the same conditional writes as the transactional path in service.py
(Idempotency-Key claim, requester cap, ally slot, the row, its data key, the webhook
deliveries), chained as data-modifying CTEs in one statement, each gated on the one before
it having written. One statement in autocommit is one transaction and one round trip, where
the transactional path takes eight (BEGIN, six statements, COMMIT).

Each write is the same atomic statement as before, so the race guarantees are the same: the
claim's primary key, the cap's ``ON CONFLICT ... WHERE open < cap`` and the slot's
``UPDATE ... WHERE open < max AND listed`` serialise racing processes on their rows.

Anything but a plain success falls back to the transactional path, which decides the
refusal in its order (404, 409 with alternatives, 429) or replays the key:

- nothing written (the cap refused without a key, the key already claimed: a replay or a
  422/409 to decide) → the statement answers no profile;
- something written but no request (the key claimed or the cap taken, then the slot
  refused) → the statement divides by zero, which undoes all of it (one transaction).

Given a ``PendingWrite``, the statement also takes the caller's write count first
(core/http/ratelimit.py) and gates the claim and the cap on it: over the limit it writes
nothing else. Its count stands unless the statement divides by zero (then the transactional
path counts).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from allyapi.allies.listing_repository import ALLIES, listed_clause
from allyapi.contact_requests.repository import KEYS, LOADS, PUBLIC_PROFILE, REQUESTS
from allyapi.core.db.driver import DriverStatement, sqlstate_of
from allyapi.core.db.models import json_array_contains, table_of
from allyapi.core.http.idempotency import KEY_TTL, IdempotencyScope, claim_upsert
from allyapi.core.http.ratelimit import PendingWrite, counting_cte, within_limit
from allyapi.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

DELIVERIES = table_of(WebhookDelivery)
SUBSCRIPTIONS = table_of(WebhookSubscription)
DIVISION_BY_ZERO = "22012"
# Constants written into the SQL: anonymous bound values inside data-modifying CTEs were not
# carried over from SQLAlchemy's statement cache (a value was "required" on the second run).
ONE, ZERO = (
    sa.literal_column("1", sa.Integer()),
    sa.literal_column("0", sa.Integer()),
)  # the statement's own refusal: everything it wrote is undone


def _p(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    """Never named after a column of ``allies``: the UPDATE would take it as a SET value."""
    return sa.bindparam(name, type_=column.type)


def _count(cte: sa.CTE) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(cte).scalar_subquery()


@lru_cache(maxsize=16)
def driver_statement(
    today: date, claimed: bool, counted: bool, columns: tuple[str, ...], dialect: Dialect
) -> DriverStatement:
    """The statement compiled once per day, key or not, count or not, set of columns and
    engine."""
    return DriverStatement.compile(create_statement(today, claimed, counted, columns), dialect)


def create_statement(
    today: date, claimed: bool, counted: bool, columns: tuple[str, ...]
) -> sa.Select[Any]:
    """The statement for ``today`` (``listed`` is in it), with a key claim or not, the write
    count or not, inserting ``columns``; compiled and cached by ``driver_statement``."""
    count = counting_cte() if counted else None
    allowed = within_limit(count) if count is not None else None
    gate: sa.CTE | None = None
    if claimed:
        gate = claim_upsert("postgresql", prefix="k_", where=allowed).cte("claimed")

    load_values = sa.select(
        _p("load_org", LOADS.c.org_id), _p("load_ref", LOADS.c.requester_ref), ONE
    )
    if gate is not None:
        load_values = load_values.where(sa.exists(sa.select(1).select_from(gate)))
    elif allowed is not None:
        load_values = load_values.where(allowed)
    load = pg_insert(LOADS).from_select(
        ["org_id", "requester_ref", "open_requests"], load_values, include_defaults=False
    )
    capped = (
        load.on_conflict_do_update(
            index_elements=[LOADS.c.org_id, LOADS.c.requester_ref],
            set_={"open_requests": LOADS.c.open_requests + ONE},
            where=LOADS.c.open_requests < sa.bindparam("cap", type_=sa.Integer()),
        )
        .returning(LOADS.c.open_requests)
        .cte("capped")
    )

    slot = (
        sa.update(ALLIES)
        .where(
            ALLIES.c.org_id == sa.bindparam("slot_org", type_=sa.String()),
            ALLIES.c.id == sa.bindparam("slot_ally", type_=ALLIES.c.id.type),
            ALLIES.c.open_requests < ALLIES.c.max_open_requests,
            listed_clause(today),
            sa.exists(sa.select(1).select_from(capped)),
        )
        .values(open_requests=ALLIES.c.open_requests + ONE)
        .returning(*(ALLIES.c[name] for name in PUBLIC_PROFILE))
        .cte("slot")
    )

    row = sa.select(*(_p(f"r_{name}", REQUESTS.c[name]) for name in columns)).where(
        sa.exists(sa.select(1).select_from(slot))
    )
    inserted = (
        REQUESTS.insert()
        .from_select(list(columns), row, include_defaults=False)
        .returning(REQUESTS.c.id)
        .cte("inserted")
    )
    keyed = (
        KEYS.insert()
        .from_select(
            ["request_id", "org_id", "key_sealed"],
            sa.select(
                inserted.c.id, _p("r_org_id", KEYS.c.org_id), _p("key_sealed", KEYS.c.key_sealed)
            ),
        )
        .returning(KEYS.c.request_id)
        .cte("keyed")
    )
    # The outbox: one delivery per integration-owned subscription to the event (outbox.py).
    deliveries = (
        sa.select(
            sa.func.gen_random_uuid(),
            SUBSCRIPTIONS.c.id,
            _p("r_org_id", DELIVERIES.c.org_id),
            _p("event_id", DELIVERIES.c.event_id),
            _p("event_type", DELIVERIES.c.event_type),
            inserted.c.id,
            _p("event_body", DELIVERIES.c.body),
            sa.literal_column(f"'{DeliveryStatus.pending.value}'"),
            ZERO,
            _p("r_created_at", DELIVERIES.c.next_attempt_at),
            _p("r_created_at", DELIVERIES.c.created_at),
            _p("r_created_at", DELIVERIES.c.updated_at),
        )
        .select_from(SUBSCRIPTIONS.join(inserted, sa.true()))
        .where(
            SUBSCRIPTIONS.c.org_id == _p("r_org_id", SUBSCRIPTIONS.c.org_id),
            json_array_contains(SUBSCRIPTIONS.c.events, _p("event_type", DELIVERIES.c.event_type)),
            SUBSCRIPTIONS.c.owner_ref.is_not(None),
        )
    )
    hooked = (
        DELIVERIES.insert()
        .from_select(
            [
                "id",
                "subscription_id",
                "org_id",
                "event_id",
                "event_type",
                "contact_request_id",
                "body",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
                "updated_at",
            ],
            deliveries,
            include_defaults=False,
        )
        .returning(DELIVERIES.c.id)
        .cte("hooked")
    )

    wrote = _count(capped) > ZERO
    if gate is not None:
        wrote = sa.or_(wrote, _count(gate) > ZERO)
    guard = ONE / sa.case((sa.and_(wrote, _count(inserted) == ZERO), ZERO), else_=ONE)
    one = sa.select(ONE.label("one")).subquery("one")
    rate: tuple[Any, ...] = ()
    if count is not None:  # after the profile: (count, window, now)
        rate = tuple(
            sa.select(count.c[name]).scalar_subquery().label(f"rate_{name}")
            for name in ("count", "window_start", "now")
        )
    return sa.select(
        guard.label("guard"),
        _count(keyed).label("keyed"),
        _count(hooked).label("hooked"),
        *(slot.c[name] for name in PUBLIC_PROFILE),
        *rate,
    ).select_from(one.outerjoin(slot, sa.true()))


async def create_in_one_statement(
    connection: AsyncConnection,
    *,
    today: date,
    request: dict[str, Any],
    cap: int,
    ally_id: uuid.UUID,
    key_sealed: str,
    event: tuple[uuid.UUID, str, str],
    scope: IdempotencyScope | None,
    write: PendingWrite | None,
) -> dict[str, Any] | None:
    """The named ally's public profile when the request was stored; None when the
    transactional path must decide (a refusal or a replay). ``request``: every column of
    the new row; ``event``: the webhook event's id, type and body; ``write``: the write
    count to take first (its ``counted`` is called, and raises 429 over the limit)."""
    columns = tuple(sorted(request))
    params: dict[str, Any] = {f"r_{name}": value for name, value in request.items()}
    event_id, event_type, body = event
    params.update(
        load_org=request["org_id"],
        load_ref=request["requester_ref"],
        cap=cap,
        slot_org=request["org_id"],
        slot_ally=ally_id,
        key_sealed=key_sealed,
        event_id=event_id,
        event_type=event_type,
        event_body=body,
    )
    if scope is not None:
        now: datetime = request["created_at"]
        params.update(
            k_org_id=scope.org_id,
            k_caller_ref=scope.caller_ref,
            k_key=scope.key,
            k_operation=scope.operation,
            k_request_hash=scope.request_hash,
            k_resource_id=request["id"],
            k_status_code=201,
            k_created_at=now,
            k_expires_at=now + KEY_TTL,
        )
    if write is not None:
        params.update(write.params)
    statement = driver_statement(
        today, scope is not None, write is not None, columns, connection.dialect
    )
    try:
        row = await statement.fetchrow(connection, params)
    except asyncpg.PostgresError as exc:  # the driver's own errors (core/db/driver.py)
        if sqlstate_of(exc) == DIVISION_BY_ZERO:
            return None  # nothing stands, the count neither
        raise
    values: tuple[Any, ...] = tuple(row.values())
    if write is not None:
        count, window, clock = values[-3:]  # the database's clock
        await write.counted(connection, int(count), int(window), int(clock))
    profile = dict(zip(PUBLIC_PROFILE, values[3 : 3 + len(PUBLIC_PROFILE)], strict=True))
    return None if profile["id"] is None else profile
