"""Training schemas: bodies forbid unknown fields; responses list their fields explicitly."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from allyapi.allies.models import AllyStatus
from allyapi.core.db.models import today
from allyapi.core.http.schemas import PublicSchema, RequestBody
from allyapi.training.dates import EARLIEST_COMPLETION, RecordStatus, record_status
from allyapi.training.models import TrainingRecord

CourseName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Provider = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ValidityMonths = Annotated[int, Field(ge=1, le=240, description="null: never expires")]
EvidenceRef = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    Field(description="Where the certificate lives (a URL or a document id), not the document"),
]
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(description="The record's id in the LMS/HRIS; unique within the organisation"),
]
HrSubject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    Field(description="The ally's `sub` at the identity provider; matched, never stored"),
]
BATCH_MAX_ROWS = 1000
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_text(value: Any) -> Any:
    """A JSON date is ``YYYY-MM-DD`` text; pydantic would also read 0 as 1970-01-01."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not ISO_DATE.match(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text), Field(description="YYYY-MM-DD")]


def check_completed_on(value: date) -> date:
    """Not before 1970; not in the future, with one day of grace for time zones east of UTC."""
    if value < EARLIEST_COMPLETION:
        raise ValueError("completed_on is before 1970-01-01")
    if value > today() + timedelta(days=1):
        raise ValueError("completed_on is in the future")
    return value


class TrainingCourseCreate(RequestBody):
    name: CourseName
    provider: Provider | None = None
    validity_months: ValidityMonths | None = None
    # Strict booleans: 0 or "yes" are typos a client should hear about.
    required: StrictBool = False


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """``name`` and ``required`` refuse ``null``: the contract offers no ``default: null``."""
    for field in ("name", "required"):
        schema["properties"][field].pop("default", None)


class TrainingCourseUpdate(RequestBody):
    """Absent fields stay as they are; ``null`` clears ``provider`` or ``validity_months``."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)

    name: CourseName | SkipJsonSchema[None] = None
    provider: Provider | None = None
    validity_months: ValidityMonths | None = None
    required: StrictBool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _no_null_for_mandatory(self) -> Self:
        for field in ("name", "required"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class TrainingCoursePublic(PublicSchema):
    id: uuid.UUID
    name: str = Field(max_length=200)
    provider: str | None = Field(default=None, max_length=200)
    validity_months: int | None = Field(default=None, ge=1, le=240)
    required: bool


class TrainingRecordCreate(RequestBody):
    course_id: uuid.UUID
    completed_on: IsoDate
    evidence_ref: EvidenceRef | None = None
    external_id: ExternalId | None = None
    ally_id: uuid.UUID | None = Field(
        default=None,
        description="Required for coordinators; an ally may omit it (or give their own id)",
    )

    _completed_on = field_validator("completed_on")(check_completed_on)


class TrainingRecordPublic(PublicSchema):
    id: uuid.UUID
    ally_id: uuid.UUID
    course_id: uuid.UUID
    completed_on: date
    expires_on: date | None = Field(description="completed_on + the course's validity_months")
    verified: bool
    evidence_ref: str | None = Field(default=None, max_length=500)
    external_id: str | None = Field(default=None, max_length=200)
    status: RecordStatus = Field(
        description="From expires_on and today: `expiring` = expires within 60 days"
    )

    @classmethod
    def of(cls, record: TrainingRecord, on: date) -> TrainingRecordPublic:
        return cls(
            id=record.id,
            ally_id=record.ally_id,
            course_id=record.course_id,
            completed_on=record.completed_on,
            expires_on=record.expires_on,
            verified=record.verified,
            evidence_ref=record.evidence_ref,
            external_id=record.external_id,
            status=record_status(record.expires_on, on),
        )


class BatchRow(RequestBody):
    """One LMS/HRIS completion: the ally by ``ally_id`` or ``sub``, the course by ``course_id``
    or ``course_name`` (exactly one of each).

    A body that breaks this schema is a 422 like any other. What the schema cannot say (one of
    each reference, a completion date in the future or before 1970) and what depends on stored
    data (unknown ally or course) answers per row, and the other rows are still written.
    """

    external_id: ExternalId
    ally_id: uuid.UUID | None = None
    sub: HrSubject | None = None
    course_id: uuid.UUID | None = None
    course_name: CourseName | None = None
    completed_on: IsoDate
    evidence_ref: EvidenceRef | None = None
    verified: StrictBool = Field(
        default=True, description="Trusted sources record verified training"
    )

    def problem(self) -> str | None:
        """Why this row cannot be written, whatever is stored; None when it can."""
        if (self.ally_id is None) == (self.sub is None):
            return "give exactly one of ally_id and sub"
        if (self.course_id is None) == (self.course_name is None):
            return "give exactly one of course_id and course_name"
        try:
            check_completed_on(self.completed_on)
        except ValueError as error:
            return str(error)
        return None


class TrainingRecordBatch(RequestBody):
    rows: list[BatchRow] = Field(min_length=1, max_length=BATCH_MAX_ROWS)


BatchErrorCode = Literal["invalid", "duplicate_external_id", "ally_not_found", "course_not_found"]


class BatchRowError(PublicSchema):
    code: BatchErrorCode
    detail: str = Field(max_length=500)


class BatchRowResult(PublicSchema):
    index: int = Field(ge=0, lt=BATCH_MAX_ROWS, description="The row's position in `rows`")
    external_id: str = Field(max_length=200)
    status: Literal["created", "updated", "unchanged", "error"]
    id: uuid.UUID | None = None
    error: BatchRowError | None = None


class TrainingRecordBatchResult(PublicSchema):
    created: int = Field(ge=0, le=BATCH_MAX_ROWS)
    updated: int = Field(ge=0, le=BATCH_MAX_ROWS)
    unchanged: int = Field(ge=0, le=BATCH_MAX_ROWS)
    errors: int = Field(ge=0, le=BATCH_MAX_ROWS)
    results: list[BatchRowResult] = Field(max_length=BATCH_MAX_ROWS)


class ComplianceCourse(PublicSchema):
    course_id: uuid.UUID
    name: str = Field(max_length=200)
    expires_on: date | None = Field(
        default=None, description="Of the ally's latest verified record; null when missing"
    )


class ComplianceEntry(PublicSchema):
    ally_id: uuid.UUID
    display_name: str = Field(max_length=100)
    status: AllyStatus
    listed: bool = Field(description="Listed: active, accepting, required training current")
    missing: list[ComplianceCourse] = Field(max_length=1000)
    expiring: list[ComplianceCourse] = Field(max_length=1000)
    expired: list[ComplianceCourse] = Field(max_length=1000)
