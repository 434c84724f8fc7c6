"""Operations endpoints (no auth): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from allyapi.core import metrics as prometheus
from allyapi.core.auth.security import AppSettings
from allyapi.core.db.migrations import current_revision, head_revision
from allyapi.core.db.session import Database
from allyapi.core.http.errors import Unauthorized
from allyapi.core.http.openapi import problem_responses

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unreachable"]
    schema_at_head: bool


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    response_model=None,
    # The same document either way, so a load balancer or a person can see why it is not ready.
    responses={
        200: {"model": Readiness, "description": "Ready to serve traffic"},
        503: {"model": Readiness, "description": "Not ready: database unreachable or behind"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    try:
        revision = await asyncio.wait_for(current_revision(database.engine), timeout=3)
    except Exception:  # any failure to reach the database means "not ready"
        body = Readiness(status="unavailable", database="unreachable", schema_at_head=False)
        return JSONResponse(body.model_dump(), status_code=503)
    at_head = revision == head_revision()
    body = Readiness(
        status="ready" if at_head else "unavailable", database="ok", schema_at_head=at_head
    )
    return JSONResponse(body.model_dump(), status_code=200 if at_head else 503)


metrics_bearer = HTTPBearer(
    scheme_name="metricsToken",
    auto_error=False,
    description="ALLYAPI_METRICS_TOKEN (required by /metrics when set; production sets it)",
)


async def metrics_scraper(
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> None:
    """The configured scrape token, compared in constant time; no token configured: open."""
    expected = settings.metrics_token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if (
        credentials is None
        or credentials.scheme.lower() != "bearer"
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise Unauthorized("/metrics needs the bearer token configured as ALLYAPI_METRICS_TOKEN")


@router.get(
    "/metrics",
    summary="Prometheus metrics: request counts and latencies per route template",
    dependencies=[Depends(metrics_scraper)],
    response_class=Response,
    # Bounded by the number of route templates and statuses, never by input.
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string", "maxLength": 4194304}}}},
        **problem_responses(401),
    },
)
async def metrics() -> Response:
    """Summed over every worker process of the server. Needs `Authorization: Bearer
    <ALLYAPI_METRICS_TOKEN>` when that is set (production refuses to start without it)."""
    body = await asyncio.to_thread(prometheus.render)  # reads the workers' files
    return Response(body, media_type=prometheus.CONTENT_TYPE)
