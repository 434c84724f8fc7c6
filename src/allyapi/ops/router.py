"""Operations endpoints (no auth): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from allyapi.core.database import Database
from allyapi.core.metrics import Registry
from allyapi.core.migrations import current_revision, head_revision

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


@router.get(
    "/metrics",
    summary="Prometheus metrics: request counts and latencies per route template",
    response_class=PlainTextResponse,
    # Bounded by the number of route templates and statuses, never by input.
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string", "maxLength": 4194304}}}}
    },
)
async def metrics(request: Request) -> PlainTextResponse:
    registry: Registry = request.app.state.metrics
    return PlainTextResponse(registry.render(), media_type="text/plain; version=0.0.4")
