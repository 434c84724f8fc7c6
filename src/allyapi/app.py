"""The application factory: settings in, a wired FastAPI app out."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from allyapi import __version__
from allyapi.allies.router import me_router as ally_me_router
from allyapi.allies.router import router as allies_router
from allyapi.audit.router import router as audit_router
from allyapi.contact_requests.router import me_router as contact_requests_me_router
from allyapi.contact_requests.router import router as contact_requests_router
from allyapi.core.auth.tokens import TokenVerifier
from allyapi.core.db.session import Database
from allyapi.core.http.errors import install_error_handlers
from allyapi.core.http.middleware import (
    BodyLimit,
    JsonBodiesOnly,
    MethodNotAllowed,
    SecurityHeaders,
)
from allyapi.core.http.openapi import install_openapi, operation_id
from allyapi.core.http.query import known_query_only
from allyapi.core.http.ratelimit import RateLimitHeaders, caller_rate_limit
from allyapi.core.logging import configure_logging
from allyapi.core.metrics import MetricsMiddleware
from allyapi.core.settings import Settings, load_settings, secrets_warning
from allyapi.export.router import router as export_router
from allyapi.feedback.router import router as feedback_router
from allyapi.jobs.registry import all_jobs
from allyapi.jobs.runner import JobRunner
from allyapi.ops.docs import install_docs
from allyapi.ops.router import router as ops_router
from allyapi.reports.router import router as reports_router
from allyapi.resources.router import router as resources_router
from allyapi.scim.errors import ScimErrors
from allyapi.scim.openapi import scim_contract
from allyapi.scim.router import router as scim_router
from allyapi.topics.router import router as topics_router
from allyapi.training.router import router as training_router
from allyapi.webhooks.router import router as webhooks_router

DESCRIPTION = """\
The headless API behind workplace mental health ally networks: a directory of trained
volunteer allies, their training, signposting resources, and confidential contact requests.
Privacy is enforced by construction: requesters are pseudonymous, free text
is encrypted at rest, and leadership sees aggregates only.
"""

# Batch imports whose documented maxItems (1000 records, 50,000 roster subs) cannot fit in the
# default body cap; every other route keeps ALLYAPI_MAX_BODY_BYTES.
BATCH_BODY_LIMITS = {
    "/v1/training-records/batch": 2 * 1024 * 1024,
    "/v1/allies/roster-sync": 16 * 1024 * 1024,
}


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    warning = secrets_warning(settings)
    if warning is not None:
        logging.getLogger("allyapi.settings").warning(warning)
    database = database or Database(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        jobs = JobRunner(all_jobs(), settings, database)
        jobs.start()
        # Everything alive once the app has started (modules, routes, schemas, statements)
        # lives as long as the process: frozen out of the collector's generations, so a full
        # collection no longer walks it. Unfrozen, full collections took up to 0.5 s under
        # load, the worst of the directory's tail (bench/RESULTS.md).
        gc.collect()
        gc.freeze()
        yield
        await jobs.stop()  # before the engine goes: a run in progress finishes first
        await database.dispose()

    docs = settings.expose_docs
    app = FastAPI(
        title="allyapi",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by ops/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        # Routers are included lazily, so operation ids must come from the app-wide generator.
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.verifier = TokenVerifier(settings)

    install_error_handlers(app)
    for router in (
        allies_router,
        ally_me_router,
        training_router,
        resources_router,
        feedback_router,
        reports_router,
        topics_router,
        contact_requests_router,
        contact_requests_me_router,
        webhooks_router,
        audit_router,
        export_router,
    ):
        app.include_router(
            router,
            prefix="/v1",
            # In this order: authentication (inside the rate limit) answers 401 first.
            dependencies=[Depends(caller_rate_limit), Depends(known_query_only)],
        )
    app.include_router(
        scim_router, dependencies=[Depends(caller_rate_limit), Depends(known_query_only)]
    )
    app.include_router(ops_router, dependencies=[Depends(known_query_only)])
    if docs:
        install_docs(app)
    install_openapi(app, finishers=[scim_contract])

    # Outermost last: metrics see every response, including the ones refused early.
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(JsonBodiesOnly)
    app.add_middleware(MethodNotAllowed, routes=lambda: app.routes)
    app.add_middleware(
        BodyLimit, max_body_bytes=settings.max_body_bytes, path_limits=BATCH_BODY_LIMITS
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
            expose_headers=[
                "ETag",
                "Location",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
            ],
            max_age=600,
        )
    app.add_middleware(ScimErrors)  # outside every middleware that answers problem+json
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, root=app)
    return app
