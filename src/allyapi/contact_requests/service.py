"""Contact-request rules: create (matching, caps, idempotency), reads per audience, actions.

Status changes go through ``Lifecycle`` (lifecycle.py); SQL through the repository; sealed
fields are opened only in ``Views``. Services flush, never commit (the Session dependency does).

Choices the product rules leave open:
- an ally who exists and is active with current training but is not ``accepting``, or is at
  capacity, answers 409 with up to 3 ``alternatives`` (public profiles); paused, retired,
  untrained, unknown or another org's allies answer 404;
- without ``ally_id``, when no listed ally has room, nothing is stored and the answer is a 409
  ``no-ally-available`` carrying the crisis, EAP and professional ``resources`` for the
  caller's country (plus global ones): a request nobody can see would help nobody;
- the requester cap answers 429 with ``Retry-After: 3600`` (a slot frees when a request
  closes, which no clock predicts; an hour is a sensible hint);
- ``resources`` on a high-urgency request are computed from the reader's token ``country`` on
  every read: the country is never stored with the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from allyapi.allies.models import Ally
from allyapi.allies.schemas import AllyPublic
from allyapi.contact_requests.access import Person, RequestAccess, Role
from allyapi.contact_requests.fast_create_repository import create_in_one_statement
from allyapi.contact_requests.lifecycle import Lifecycle
from allyapi.contact_requests.matching import Matcher, Wanted, department_key
from allyapi.contact_requests.models import AccessLogEntry, ContactRequest
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.schemas import (
    CompleteBody,
    ContactRequestAllySummary,
    ContactRequestAllyView,
    ContactRequestBody,
    ContactRequestRequesterSummary,
    ContactRequestRequesterView,
    Urgency,
)
from allyapi.contact_requests.sealing import RequestKeys
from allyapi.contact_requests.views import SEALED_FIELDS, NewRequest, Views
from allyapi.core.db.models import today, utcnow
from allyapi.core.http.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests
from allyapi.core.http.idempotency import Idempotency, IdempotencyScope, body_hash
from allyapi.core.http.pagination import PageRequest
from allyapi.core.http.ratelimit import PendingWrite
from allyapi.core.http.schemas import Page
from allyapi.core.privacy.crypto import Cipher, DataKey
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource, ResourceCategory
from allyapi.resources.repository import ResourceRepository
from allyapi.resources.schemas import ResourcePublic
from allyapi.webhooks.events import contact_request_assigned
from allyapi.webhooks.outbox import payload

CREATE_OPERATION = "contact_requests.create"
REQUESTER_CAP_RETRY_AFTER = 3600
URGENT_CATEGORIES = (ResourceCategory.crisis, ResourceCategory.professional)
NO_ALLY_CATEGORIES = (ResourceCategory.crisis, ResourceCategory.eap, ResourceCategory.professional)


class AllyUnavailable(Conflict):
    slug, title = "ally-unavailable", "This ally cannot take a request now"


class NoAllyAvailable(Conflict):
    slug, title = "no-ally-available", "No ally can take a request now"


@dataclass(frozen=True)
class Created:
    view: ContactRequestRequesterView
    status_code: int
    replayed: bool


def _created(row: Any) -> tuple[datetime, uuid.UUID]:
    return row.created_at, row.id


def _sent(body: ContactRequestBody) -> dict[str, str | None]:
    """The free text as sent, for the create's answer (views.py, ``for_requester``)."""
    return {field: getattr(body, field) for field in SEALED_FIELDS}


def cipher_of(settings: Settings) -> Cipher:
    return _cipher(tuple(settings.data_key_ring))


@lru_cache(maxsize=8)
def _cipher(ring: tuple[tuple[str, bytes], ...]) -> Cipher:
    """One Cipher per key ring, not one per request: building the AES-GCM key objects was
    repeated work on every create (bench/RESULTS.md). A new ring (rotation) gets its own."""
    return Cipher(list(ring))


class ContactRequestService:
    def __init__(
        self, session: AsyncSession, settings: Settings, fast: AsyncEngine | None = None
    ) -> None:
        self.session = session
        self.settings = settings
        # PostgreSQL's autocommit engine: a create naming an ally runs as one statement
        # there (fastcreate.py); None: the transactional path only (SQLite, jobs).
        self.fast = fast
        self.repo = ContactRequestRepository(session)
        self.views = Views(cipher_of(settings))
        self.keys = RequestKeys(self.repo, self.views.ring)
        self.lifecycle = Lifecycle(
            session,
            response_window=timedelta(hours=settings.response_window_hours),
            retention=timedelta(days=settings.retention_days),
        )

    # Create -------------------------------------------------------------------------------

    async def create(
        self,
        person: Person,
        body: ContactRequestBody,
        idempotency_key: str | None,
        write: PendingWrite | None = None,
    ) -> Created:
        """``write``: the caller's write count when this create is to take it (PostgreSQL,
        core/http/ratelimit.py): in the one statement, else before anything is written."""
        request_id = uuid.uuid4()  # first: the key's claim and the seals are bound to it
        scope = None
        if idempotency_key is not None:
            scope = IdempotencyScope(
                person.org, person.idempotency_ref, idempotency_key, CREATE_OPERATION,
                body_hash(body, self.settings.pseudonym_key_bytes),
            )  # fmt: skip
        if self.fast is not None and body.ally_id is not None:
            created = await self._create_at_once(person, body, request_id, scope, write)
            if created is not None:
                return created
        if write is not None:
            await write.settle()  # 429 first, as when the rate-limit dependency counts
        if scope is not None:
            replay = await Idempotency(self.session).claim(scope, resource=(request_id, 201))
            if replay is not None:
                request = await self.repo.get(person.org, replay.resource_id)
                if request is None:  # erasure deletes the key with the request: not reached
                    raise NotFound("contact request not found")
                view = await self.requester_view(request, person)
                return Created(view, replay.status_code, replayed=True)
        new, ally, key = await self._create(person, body, request_id)
        resources = await self._urgent_resources(new.urgency, new.org_id, person)
        view = self.views.for_requester(new, ally, resources, key, _sent(body))
        return Created(view, 201, replayed=False)

    async def _create_at_once(
        self,
        person: Person,
        body: ContactRequestBody,
        request_id: uuid.UUID,
        scope: IdempotencyScope | None,
        write: PendingWrite | None,
    ) -> Created | None:
        """The hot path on PostgreSQL: every rule in one statement (fastcreate.py). None when
        it stored nothing: the transactional path then decides the refusal or the replay."""
        assert self.fast is not None
        assert body.ally_id is not None
        new, key = self._new_request(person, body, request_id, body.ally_id)
        event = (
            "contact_request.assigned",
            {"contact_request_id": request_id, "ally_id": body.ally_id},
        )
        event_id = uuid.uuid4()
        event_body = payload(event_id, event[0], person.org, event[1], new.created_at)
        async with self.fast.connect() as connection:
            profile = await create_in_one_statement(
                connection,
                today=today(),
                request=new.row(person.requester_ref),
                cap=self.settings.max_open_requests,
                ally_id=body.ally_id,
                key_sealed=self.keys.seal(key, request_id),
                event=(event_id, event[0], event_body),
                scope=scope,
                write=write,
            )
        if profile is None:
            return None
        resources = await self._urgent_resources(new.urgency, new.org_id, person)
        view = self.views.for_requester(new, profile, resources, key, _sent(body))
        return Created(view, 201, replayed=False)

    def _new_request(
        self, person: Person, body: ContactRequestBody, request_id: uuid.UUID, ally_id: uuid.UUID
    ) -> tuple[NewRequest, DataKey]:
        """The new row, its free text sealed under its own data key (sealing.py)."""
        now, key = utcnow(), DataKey.generate()
        new = NewRequest(
            id=request_id,
            org_id=person.org,
            ally_id=ally_id,
            topic=body.topic,
            urgency=body.urgency,
            language=body.language,
            preferred_channel=body.preferred_channel,
            anonymous=body.anonymous,
            created_at=now,
            expires_at=now + timedelta(hours=self.settings.response_window_hours),
            message_sealed=self.views.seal_new(key, request_id, "message", body.message),
            contact_detail_sealed=self.views.seal_new(
                key, request_id, "contact_detail", body.contact_detail
            ),
            alias_sealed=self.views.seal_new(key, request_id, "alias", body.alias),
        )
        return new, key

    async def _create(
        self, person: Person, body: ContactRequestBody, request_id: uuid.UUID
    ) -> tuple[NewRequest, Ally | dict[str, Any], DataKey]:
        """The hot path (bench/RESULTS.md): conditional statements that each decide one rule,
        in this order, and reads only on the way to an error. Every refusal rolls the whole
        transaction back (the requester slot and the key's claim included). The request's
        own data key is made here and stored right after the request (sealing.py)."""
        on = today()
        cap = self.settings.max_open_requests
        if not await self.repo.claim_requester_slot(person.org, person.requester_ref, cap):
            await self._reachable_or_404(person, body, on)  # an unknown ally is a 404 first
            raise TooManyRequests(
                f"at most {cap} open requests at a time: cancel or close one first",
                retry_after=REQUESTER_CAP_RETRY_AFTER,
            )
        ally_id, ally = await self._assign(person, body)
        new, key = self._new_request(person, body, request_id, ally_id)
        await self.repo.insert_request(new.row(person.requester_ref))
        await self.repo.insert_key(person.org, request_id, self.keys.seal(key, request_id))
        await contact_request_assigned(self.session, person.org, request_id, ally_id)
        return new, ally, key

    async def _reachable_or_404(self, person: Person, body: ContactRequestBody, on: date) -> None:
        """A named ally that is unknown, of another org, paused, retired or untrained: 404."""
        if body.ally_id is not None and not await self.repo.is_reachable(
            person.org, body.ally_id, on
        ):
            raise NotFound("ally not found")

    async def _assign(
        self, person: Person, body: ContactRequestBody
    ) -> tuple[uuid.UUID, Ally | dict[str, Any]]:
        """The ally whose slot this transaction took, with its public profile; 409 when none
        can take it."""
        on, matcher = today(), Matcher(self.session)
        wanted = Wanted(body.topic, body.language, department_key(person.department))
        if body.ally_id is not None:
            profile = await self.repo.claim_ally_slot(person.org, body.ally_id, on)
            if profile is not None:
                return body.ally_id, profile
            await self._reachable_or_404(person, body, on)
            others = Wanted(wanted.topic, wanted.language, wanted.avoid_department, {body.ally_id})
            alternatives = await matcher.alternatives(person.org, on, others)
            raise AllyUnavailable(
                "this ally is not taking requests or is at capacity; see alternatives",
                extensions={"alternatives": [_profile(ally) for ally in alternatives]},
            )
        ally = await matcher.claim_best(person.org, on, wanted)
        if ally is None:
            resources = await ResourceRepository(self.session).for_signposting(
                person.org, person.country, NO_ALLY_CATEGORIES
            )
            raise NoAllyAvailable(
                "no listed ally has room right now; these services can help meanwhile",
                extensions={"resources": [_resource(r) for r in resources]},
            )
        return ally.id, ally

    async def _urgent_resources(
        self, urgency: str, org_id: str, person: Person
    ) -> Sequence[Resource] | None:
        """Crisis and professional help shown with a high-urgency request (reader's country)."""
        if urgency != Urgency.high:
            return None
        return await ResourceRepository(self.session).for_signposting(
            org_id, person.country, URGENT_CATEGORIES
        )

    # Reads --------------------------------------------------------------------------------

    async def requester_view(
        self, request: ContactRequest, person: Person
    ) -> ContactRequestRequesterView:
        ally = None
        if request.ally_id is not None:
            ally = await self.repo.ally(request.org_id, request.ally_id)
        resources = await self._urgent_resources(request.urgency, request.org_id, person)
        return self.views.for_requester(request, ally, resources, await self.key_of(request))

    async def ally_view(self, access: RequestAccess) -> ContactRequestAllyView:
        """The assigned ally's view (docs/privacy.md, P3); the read is access-logged (P5)."""
        await self.hold_for_reading(access)
        await self.log_access(access, "read_request")
        return self.views.for_ally(access.request, await self.key_of(access.request))

    async def key_of(self, request: ContactRequest) -> DataKey | None:
        """The request's data key, to open its content; a purged request has none left."""
        if request.content_purged_at is not None:
            return None
        return await self.keys.of(request.id)

    async def hold_for_reading(self, access: RequestAccess) -> None:
        """Before an ally reads protected content: lock the request row for this transaction
        and re-read it, so the read and its access-log row are ordered with an erasure or a
        purge (repository ``hold_for_reading``). The requester's own reads log nothing."""
        if access.role != Role.ally:
            return
        if await self.repo.hold_for_reading(access.request.org_id, access.request.id) is None:
            raise NotFound("contact request not found")

    async def log_access(self, access: RequestAccess, action: str) -> None:
        """The ally's read, in the requester's access log. ``hold_for_reading`` first."""
        request, ally = access.request, access.ally
        if access.role != Role.ally or ally is None:
            return
        self.repo.add(
            AccessLogEntry(
                org_id=request.org_id,
                request_id=request.id,
                accessor_ally_id=ally.id,
                accessor=ally.display_name,
                action=action,
                accessed_at=utcnow(),
            )
        )
        await self.session.flush()

    async def list_mine(
        self, person: Person, *, page: PageRequest
    ) -> Page[ContactRequestRequesterSummary]:
        rows = await self.repo.page_of_requester(
            person.org, person.requester_ref, limit=page.fetch, before=page.after_time()
        )
        shown, next_cursor = page.split(rows, _created)
        allies = await self.repo.allies(person.org, (r.ally_id for r in shown if r.ally_id))
        items = [
            self.views.requester_summary(row, allies.get(row.ally_id) if row.ally_id else None)
            for row in shown
        ]
        return Page(items=items, next_cursor=next_cursor)

    async def list_assigned(
        self, person: Person, *, status: str | None, page: PageRequest
    ) -> Page[ContactRequestAllySummary]:
        ally = await self.repo.ally_by_subject(person.org, person.ally_ref)
        if ally is None:
            raise Forbidden("only allies have requests assigned to them")
        rows = await self.repo.page_of_ally(
            person.org, ally.id, status=status, limit=page.fetch, before=page.after_time()
        )
        shown, next_cursor = page.split(rows, _created)
        return Page(items=[self.views.ally_summary(row) for row in shown], next_cursor=next_cursor)

    # Actions ------------------------------------------------------------------------------

    async def accept(self, access: RequestAccess) -> ContactRequestAllySummary:
        await self.lifecycle.move(access.request, "accept", utcnow())
        return self.views.ally_summary(access.request)

    async def decline(self, access: RequestAccess, reason: str) -> None:
        assert access.ally is not None
        await self.lifecycle.decline(access.request, access.ally.id, reason, today(), utcnow())

    async def complete(
        self, access: RequestAccess, body: CompleteBody
    ) -> ContactRequestAllySummary:
        request = access.request
        wanted = list(dict.fromkeys(body.resource_ids))
        if set(wanted) - await self.repo.existing_resource_ids(request.org_id, wanted):
            raise InvalidInput("unknown resource", loc=("body", "resource_ids"))
        await self.lifecycle.move(request, "complete", utcnow())
        request.signposted = body.signposted
        request.signposted_resource_ids = [str(resource_id) for resource_id in wanted]
        request.follow_up = body.follow_up
        request.wellbeing = body.wellbeing
        await self.session.flush()
        return self.views.ally_summary(request)

    async def cancel(self, access: RequestAccess) -> ContactRequestRequesterView:
        await self.lifecycle.move(access.request, "cancel", utcnow())
        return await self.requester_view(access.request, access.person)

    async def erase(self, access: RequestAccess) -> None:
        await self.lifecycle.erase(access.request, utcnow())


async def rematch_pending_of_unavailable_ally(
    session: AsyncSession, org_id: str, ally_id: uuid.UUID, settings: Settings
) -> int:
    """Hand a paused or retired ally's pending requests to other allies (workflows/ally_availability.py)."""
    lifecycle = Lifecycle(
        session,
        response_window=timedelta(hours=settings.response_window_hours),
        retention=timedelta(days=settings.retention_days),
    )
    return await lifecycle.hand_back(org_id, ally_id, today(), utcnow())


def _profile(ally: Ally) -> dict[str, Any]:
    return AllyPublic.model_validate(ally).model_dump(mode="json")


def _resource(resource: Resource) -> dict[str, Any]:
    return ResourcePublic.model_validate(resource).model_dump(mode="json")
