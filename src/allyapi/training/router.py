"""/v1/training-courses, /v1/training-records, /v1/training/compliance (README.md,
"Allies and training")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit
from allyapi.core.auth.security import (
    Caller,
    CoordinatorOnly,
    EmployeeOrCoordinator,
    IntegrationOrCoordinator,
    PseudonymKey,
)
from allyapi.core.auth.tokens import Principal
from allyapi.core.db.models import today
from allyapi.core.http.etag import IfMatch, set_etag
from allyapi.core.http.idempotency import IdempotencyKeyHeader, mark_replay, scope_of
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import Page
from allyapi.training.dates import RecordStatus
from allyapi.training.deps import (
    Batches,
    Compliance,
    CoordinatorOrAlly,
    Courses,
    Records,
)
from allyapi.training.models import TrainingRecord
from allyapi.training.schemas import (
    ComplianceEntry,
    TrainingCourseCreate,
    TrainingCoursePublic,
    TrainingCourseUpdate,
    TrainingRecordBatch,
    TrainingRecordBatchResult,
    TrainingRecordCreate,
    TrainingRecordPublic,
)
from allyapi.training.service import TrainingActor

# What a batch row sets on the record it writes (the audit trail's ``changed``).
BATCH_FIELDS = ("completed_on", "course_id", "evidence_ref", "expires_on", "external_id")

router = APIRouter(tags=["training"])
# ``{record_id:uuid}``: only a UUID matches, so ``GET /training-records/batch`` is a 405 (the
# path exists for POST), not a 422 for a malformed id; any other non-UUID id is a 404.


def _as_coordinator(caller: Principal) -> TrainingActor:
    return TrainingActor(org=caller.org, coordinator=True, ally_id=None)


def _record_response(record: TrainingRecord, response: Response) -> TrainingRecordPublic:
    set_etag(response, record.id, record.version)
    return TrainingRecordPublic.of(record, today())


@router.get("/training-courses", summary="List the training catalogue")
async def list_training_courses(
    caller: EmployeeOrCoordinator,
    courses: Courses,
    page: PageQuery,
    required: Annotated[bool | None, Query(description="Only required (or optional) ones")] = None,
) -> Page[TrainingCoursePublic]:
    return await courses.list(caller.org, page=page, required=required)


@router.post(
    "/training-courses",
    status_code=status.HTTP_201_CREATED,
    summary="Add a training course",
    responses={**problem_responses(409), **headers_on(201, "ETag", "Location")},
)
async def create_training_course(
    caller: CoordinatorOnly,
    courses: Courses,
    body: TrainingCourseCreate,
    response: Response,
    key: PseudonymKey,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TrainingCoursePublic:
    scope = scope_of(
        caller.org, caller.subject, key, idempotency_key, "training-courses.create", body
    )
    made = await courses.create(caller.org, body, scope)
    course = made.value
    mark_replay(response, made.replayed)
    await audit.record(
        AuditAction.course_create, AuditTarget.training_course, course.id, body.model_fields_set,
        once=True,
    )  # fmt: skip
    set_etag(response, course.id, course.version)
    response.headers["Location"] = f"/v1/training-courses/{course.id}"
    return TrainingCoursePublic.model_validate(course)


@router.get(
    "/training-courses/{course_id}",
    summary="Read a training course",
    responses=headers_on(200, "ETag"),
)
async def get_training_course(
    caller: EmployeeOrCoordinator, courses: Courses, course_id: uuid.UUID, response: Response
) -> TrainingCoursePublic:
    course = await courses.get(caller.org, course_id)
    set_etag(response, course.id, course.version)
    return TrainingCoursePublic.model_validate(course)


@router.patch(
    "/training-courses/{course_id}",
    summary="Change a training course (a new validity re-derives its records' expiry)",
    responses={**problem_responses(409), **headers_on(200, "ETag")},
)
async def update_training_course(
    caller: CoordinatorOnly,
    courses: Courses,
    course_id: uuid.UUID,
    body: TrainingCourseUpdate,
    response: Response,
    audit: Audit,
    if_match: IfMatch = None,
) -> TrainingCoursePublic:
    course = await courses.update(caller.org, course_id, body, if_match)
    await audit.record(
        AuditAction.course_update, AuditTarget.training_course, course_id, body.model_fields_set
    )
    set_etag(response, course.id, course.version)
    return TrainingCoursePublic.model_validate(course)


@router.get(
    "/training-records",
    summary="List training records (coordinators: the organisation; allies: their own)",
)
async def list_training_records(
    actor: CoordinatorOrAlly,
    records: Records,
    page: PageQuery,
    ally_id: uuid.UUID | None = None,
    course_id: uuid.UUID | None = None,
    record_status: Annotated[
        RecordStatus | None,
        Query(alias="status", description="`expiring`: expires within 60 days"),
    ] = None,
) -> Page[TrainingRecordPublic]:
    return await records.list(
        actor,
        page=page,
        ally_id=ally_id,
        course_id=course_id,
        status=record_status,
    )


@router.post(
    "/training-records",
    status_code=status.HTTP_201_CREATED,
    summary="Record completed training (allies: self-reported; coordinators: verified)",
    responses={**problem_responses(409), **headers_on(201, "ETag", "Location")},
)
async def create_training_record(
    actor: CoordinatorOrAlly,
    records: Records,
    caller: Caller,
    body: TrainingRecordCreate,
    response: Response,
    key: PseudonymKey,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TrainingRecordPublic:
    """Only a coordinator's (verified) record is a programme action for the audit trail."""
    scope = scope_of(
        caller.org, caller.subject, key, idempotency_key, "training-records.create", body
    )
    made = await records.create(actor, body, scope)
    record = made.value
    mark_replay(response, made.replayed)
    if actor.coordinator:
        changed = {*body.model_fields_set, "verified"}
        await audit.record(
            AuditAction.record_create, AuditTarget.training_record, record.id, changed, once=True
        )
    response.headers["Location"] = f"/v1/training-records/{record.id}"
    return _record_response(record, response)


@router.post(
    "/training-records/batch",
    summary="Upsert up to 1000 records from an LMS/HRIS by external_id (a result per row)",
)
async def batch_upsert_training_records(
    caller: IntegrationOrCoordinator,
    batches: Batches,
    body: TrainingRecordBatch,
    audit: Audit,
) -> TrainingRecordBatchResult:
    """Rows created or updated are in the audit trail; unchanged ones and errors are not."""
    result = await batches.upsert(caller.org, body.rows, caller.other)
    written = [row.id for row in result.results if row.status in ("created", "updated")]
    await audit.record_many(
        AuditAction.record_batch_upsert, AuditTarget.training_record, written, BATCH_FIELDS
    )
    return result


@router.get(
    "/training-records/{record_id:uuid}",
    summary="Read a training record",
    responses=headers_on(200, "ETag"),
)
async def get_training_record(
    actor: CoordinatorOrAlly, records: Records, record_id: uuid.UUID, response: Response
) -> TrainingRecordPublic:
    record = await records.get(actor, record_id)
    return _record_response(record, response)


@router.post(
    "/training-records/{record_id:uuid}/verify",
    summary="Verify a training record (idempotent)",
    responses=headers_on(200, "ETag"),
)
async def verify_training_record(
    caller: CoordinatorOnly,
    records: Records,
    record_id: uuid.UUID,
    response: Response,
    audit: Audit,
    if_match: IfMatch = None,
) -> TrainingRecordPublic:
    record = await records.verify(_as_coordinator(caller), record_id, if_match)
    await audit.record(
        AuditAction.record_verify, AuditTarget.training_record, record_id, ["verified"]
    )
    return _record_response(record, response)


@router.delete(
    "/training-records/{record_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a training record",
)
async def delete_training_record(
    caller: CoordinatorOnly,
    records: Records,
    record_id: uuid.UUID,
    audit: Audit,
    if_match: IfMatch = None,
) -> None:
    await records.delete(_as_coordinator(caller), record_id, if_match)
    await audit.record(AuditAction.record_delete, AuditTarget.training_record, record_id)


@router.get(
    "/training/compliance",
    summary="Per ally: listed or not, and missing / expiring / expired required courses",
)
async def get_training_compliance(
    caller: CoordinatorOnly,
    compliance: Compliance,
    page: PageQuery,
    only_non_compliant: Annotated[
        bool, Query(description="Only allies with a missing or expired required course")
    ] = False,
) -> Page[ComplianceEntry]:
    return await compliance.page(caller.org, page=page, only_non_compliant=only_non_compliant)
