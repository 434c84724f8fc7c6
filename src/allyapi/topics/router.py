"""/v1/topics: the report topics coordinators keep (docs/aggregates.md, "Report groups")."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import Audit
from allyapi.core.auth.security import CoordinatorOnly, EmployeeCoordinatorOrAnalyst, PseudonymKey
from allyapi.core.http.etag import IfMatch, set_etag
from allyapi.core.http.idempotency import IdempotencyKeyHeader, scope_of
from allyapi.core.http.openapi import headers_on, problem_responses
from allyapi.core.http.pagination import PageQuery
from allyapi.core.http.schemas import Page
from allyapi.topics.deps import Topics
from allyapi.topics.schemas import TopicCreate, TopicPublic, TopicUpdate

router = APIRouter(prefix="/topics", tags=["topics"])
CREATE = "topics.create"


@router.get("", summary="List the report topics")
async def list_topics(
    caller: EmployeeCoordinatorOrAnalyst, topics: Topics, page: PageQuery
) -> Page[TopicPublic]:
    """The topics that get a group of their own in `group_by=topic` reports (at most 50).

    Requests and ally profiles may name any topic; one not listed here is counted under
    `(other)`. An organisation that never changed the list sees the built-in defaults.
    """
    return await topics.list(caller.org, page=page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="List a topic (grouped from the next period on)",
    responses={**problem_responses(409), **headers_on(201, "ETag", "Location")},
)
async def create_topic(
    caller: CoordinatorOnly,
    topics: Topics,
    body: TopicCreate,
    response: Response,
    key: PseudonymKey,
    audit: Audit,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TopicPublic:
    """409 when the key is already listed, when 50 topics are listed, or when the
    organisation's topic history (500 rows, listed and removed) is full.

    The topic gets its own group in report periods that begin after now: the groups of a
    period that has begun never change."""
    scope = scope_of(caller.org, caller.subject, key, idempotency_key, CREATE, body)
    created = await topics.create(caller.org, body, scope)
    topic = created.topic
    if not created.replayed:
        await audit.record(
            AuditAction.topic_create, AuditTarget.topic, topic.id, body.model_fields_set
        )
    set_etag(response, topic.id, topic.version)
    response.headers["Location"] = f"/v1/topics/{topic.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return TopicPublic.model_validate(topic)


@router.get("/{topic_id}", summary="Read a report topic", responses=headers_on(200, "ETag"))
async def get_topic(
    caller: EmployeeCoordinatorOrAnalyst, topics: Topics, topic_id: uuid.UUID, response: Response
) -> TopicPublic:
    topic = await topics.get(caller.org, topic_id)
    set_etag(response, topic.id, topic.version)
    return TopicPublic.model_validate(topic)


@router.patch("/{topic_id}", summary="Change a topic's label", responses=headers_on(200, "ETag"))
async def update_topic(
    caller: CoordinatorOnly,
    topics: Topics,
    topic_id: uuid.UUID,
    body: TopicUpdate,
    response: Response,
    audit: Audit,
    if_match: IfMatch = None,
) -> TopicPublic:
    topic = await topics.update(caller.org, topic_id, body, if_match)
    await audit.record(AuditAction.topic_update, AuditTarget.topic, topic_id, body.model_fields_set)
    set_etag(response, topic.id, topic.version)
    return TopicPublic.model_validate(topic)


@router.delete(
    "/{topic_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a topic (from the next period on)",
)
async def delete_topic(
    caller: CoordinatorOnly,
    topics: Topics,
    topic_id: uuid.UUID,
    audit: Audit,
    if_match: IfMatch = None,
) -> None:
    """Periods that began while the topic was listed keep its group; later ones count its
    requests under `(other)`."""
    await topics.retire(caller.org, topic_id, if_match)
    await audit.record(AuditAction.topic_delete, AuditTarget.topic, topic_id)
