"""Writing the right-of-access document incrementally (docs/export.md).

The document is streamed: a fixed head, then the caller's requests in keyset batches (each
with its thread, access log and feedback), their ally profile, training records and assigned
requests, then the programme actions they took. Memory holds one batch at a time however long
the history. It reads on a session of its own, opened when the body starts, because the
route's session is gone once the response begins.

Nothing here writes: opening a request's content for its own requester is not an ally's
access, so the access log gains no row (only an assigned ally's reads are logged).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.repository import AllyRepository
from allyapi.allies.schemas import AllyOwnView
from allyapi.allies.views import managed_view
from allyapi.audit.repository import AuditFilter, AuditRepository
from allyapi.audit.schemas import event_view
from allyapi.contact_requests.models import ContactRequest
from allyapi.contact_requests.repository import ContactRequestRepository
from allyapi.contact_requests.schemas import AccessLogEntryPublic, ContactRequestAllySummary
from allyapi.contact_requests.service import ContactRequestService
from allyapi.contact_requests.thread import MAX_MESSAGES
from allyapi.core.db.models import today, utcnow
from allyapi.core.db.session import Database, make_sessionmaker
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.export.schemas import (
    PROGRAMME_FEEDBACK_NOTE,
    REQUESTS_NOTE,
    ExportedRequest,
)
from allyapi.feedback.models import RequestFeedback
from allyapi.feedback.repository import feedback_of_requests
from allyapi.feedback.schemas import RequestFeedbackPublic
from allyapi.training.repository import RecordRepository
from allyapi.training.schemas import TrainingRecordPublic

# Rows written at a time; each read asks one more (repositories read exactly ``limit``), which
# tells whether another batch follows.
BATCH = 50
LOG_BATCH = 500


@dataclass(frozen=True)
class Whose:
    """The caller's keyed references; never the ``sub``."""

    org: str
    requester_ref: str
    ally_ref: str
    audit_ref: str
    requests_included: bool

    def __repr__(self) -> str:
        return f"Whose(org={self.org!r})"


class ExportService:
    """The right-of-access document, streamed on a session of its own (see above)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def document(self, whose: Whose) -> AsyncIterator[bytes]:
        return export_document(self.database, self.settings, whose)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def export_document(
    database: Database, settings: Settings, whose: Whose, now: datetime | None = None
) -> AsyncIterator[bytes]:
    head = {
        "generated_at": (now or utcnow()).isoformat().replace("+00:00", "Z"),
        "requests_included": whose.requests_included,
        "programme_feedback_included": False,
        "notes": [PROGRAMME_FEEDBACK_NOTE] + ([] if whose.requests_included else [REQUESTS_NOTE]),
    }
    async with make_sessionmaker(database.engine)() as session:
        yield _json(head)[:-1] + b',"requests":['
        if whose.requests_included:
            async for chunk in _requests(session, settings, whose):
                yield chunk
        yield b'],"ally":'
        async for chunk in _ally(session, whose):
            yield chunk
        yield b',"audit_events":['
        async for chunk in _audit_events(session, whose):
            yield chunk
        yield b"]}"


def _joined(items: Sequence[bytes], first: bool) -> bytes:
    return (b"" if first else b",") + b",".join(items)


async def _requests(
    session: AsyncSession, settings: Settings, whose: Whose
) -> AsyncIterator[bytes]:
    service = ContactRequestService(session, settings)
    repo, views, cipher = service.repo, service.views, Cipher(settings.data_key_ring)
    before, first = None, True
    while True:
        rows = await repo.page_of_requester(
            whose.org, whose.requester_ref, limit=BATCH + 1, before=before
        )
        batch = rows[:BATCH]
        if not batch:
            return
        allies = await repo.allies(whose.org, (r.ally_id for r in batch if r.ally_id))
        feedback = await feedback_of_requests(session, [r.id for r in batch])
        items = []
        for request in batch:
            key = await service.key_of(request)
            view = views.for_requester(
                request, allies.get(request.ally_id) if request.ally_id else None, None, key
            )
            messages = await repo.page_of_messages(request.id, limit=MAX_MESSAGES + 1, after=None)
            given = feedback.get(request.id)
            exported = ExportedRequest(
                **view.model_dump(),
                messages=[views.message(m, key) for m in messages[:MAX_MESSAGES]],
                access_log=await _access_log(session, service, request),
                feedback=None if given is None else _feedback_view(given, cipher),
            )
            items.append(exported.model_dump_json().encode())
        yield _joined(items, first)
        first = False
        session.expunge_all()  # the batch is written: let its rows go
        if len(rows) <= BATCH:
            return
        before = (batch[-1].created_at, batch[-1].id)


async def _access_log(
    session: AsyncSession, service: ContactRequestService, request: ContactRequest
) -> list[AccessLogEntryPublic]:
    entries: list[AccessLogEntryPublic] = []
    before = None
    while True:
        rows = await service.repo.page_of_access_log(request.id, limit=LOG_BATCH + 1, before=before)
        entries += [AccessLogEntryPublic.model_validate(row) for row in rows[:LOG_BATCH]]
        if len(rows) <= LOG_BATCH:
            return entries
        before = (rows[LOG_BATCH - 1].accessed_at, rows[LOG_BATCH - 1].id)


def _feedback_view(row: RequestFeedback, cipher: Cipher) -> RequestFeedbackPublic:
    aad = aad_for("request_feedback", row.id, "comment")
    return RequestFeedbackPublic(
        request_id=row.request_id,
        rating=row.rating,
        felt_heard=row.felt_heard,
        would_recommend=row.would_recommend,
        comment=cipher.open_optional(row.comment_sealed, aad),
        created_on=row.created_on,
    )


async def _ally(session: AsyncSession, whose: Whose) -> AsyncIterator[bytes]:
    """The ally part: ``null`` without a profile; content of assigned requests never."""
    on = today()
    found = await AllyRepository(session).by_subject(whose.org, whose.ally_ref, on)
    if found is None:
        yield b"null"
        return
    ally, listed = found
    profile = managed_view(ally, listed, AllyOwnView).model_dump_json().encode()
    yield b'{"profile":' + profile + b',"training_records":['
    records, after, first = RecordRepository(session), None, True
    while True:
        rows = await records.page(
            whose.org, limit=BATCH + 1, after=after, ally_id=ally.id, course_id=None,
            status=None, today=on,
        )  # fmt: skip
        batch = rows[:BATCH]
        if batch:
            items = [TrainingRecordPublic.of(r, on).model_dump_json().encode() for r in batch]
            yield _joined(items, first)
            first = False
        if len(rows) <= BATCH:
            break
        after = (batch[-1].created_at, batch[-1].id)
    yield b'],"assigned_requests":['
    async for chunk in _assigned(session, whose, ally.id):
        yield chunk
    yield b"]}"


async def _assigned(
    session: AsyncSession, whose: Whose, ally_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """Requests assigned to the ally, as the ally's list shows them: no protected content."""
    repo, before, first = ContactRequestRepository(session), None, True
    while True:
        rows = await repo.page_of_ally(
            whose.org, ally_id, status=None, limit=BATCH + 1, before=before
        )
        batch = rows[:BATCH]
        if batch:
            items = [
                ContactRequestAllySummary.model_validate(r).model_dump_json().encode()
                for r in batch
            ]
            yield _joined(items, first)
            first = False
        if len(rows) <= BATCH:
            return
        before = (batch[-1].created_at, batch[-1].id)


async def _audit_events(session: AsyncSession, whose: Whose) -> AsyncIterator[bytes]:
    repo, before, first = AuditRepository(session), None, True
    where = AuditFilter(actor=whose.audit_ref)
    while True:
        rows = await repo.page(whose.org, where, limit=BATCH + 1, before=before)
        batch = rows[:BATCH]
        if batch:
            yield _joined([event_view(r).model_dump_json().encode() for r in batch], first)
            first = False
        if len(rows) <= BATCH:
            return
        before = (batch[-1].occurred_at, batch[-1].id)
