"""Schemathesis 4 against the real app (issue 5 item 3): every operation of the contract, all
checks, positive and negative data, as an employee and as a coordinator; then the stateful
phase (call sequences along inferred links) as a coordinator.

The cases come from the contract integrators get (``openapi_document()``, the source of
openapi/openapi.json); they are sent in-process to an app instance with its own engine
(Schemathesis drives it from its own event-loop thread) on the suite's migrated database;
tables are emptied after each test as usual. ``MAX_EXAMPLES`` per operation keeps each leg
around a minute. The exclusions below (opaque inputs, rules JSON Schema cannot state) are
narrow and say why.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from allyapi.allies.schemas import TIMEZONE_FORMAT
from allyapi.app import create_app
from allyapi.core.database import Database
from allyapi.core.settings import Settings
from allyapi.ops.contract import openapi_document
from tests.helpers import TokenFactory

MAX_EXAMPLES = 10
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI is reproducible, not a lottery
    database=None,
    suppress_health_check=list(HealthCheck),
)


# A custom format the contract uses for an IANA zone name (allies/schemas.py): any listed one.
schemathesis.openapi.format(
    TIMEZONE_FORMAT,
    st.sampled_from(["Europe/London", "America/New_York", "Asia/Tokyo", "UTC", "Africa/Lagos"]),
)

# The committed contract's source: the document integrators get (fixed settings, no secret).
schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.update(base_url="http://testserver")
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES
)


@pytest.fixture(scope="module")
def fuzzed_app(settings: Settings) -> FastAPI:
    """The app on the suite's database, with its own engine (Schemathesis drives it from its own
    event loop thread; the app's lifespan disposes the engine at exit)."""
    app = create_app(
        settings.model_copy(
            update={
                "rate_limit_writes_per_minute": 100_000,  # the limiter has its own tests
                "rate_limit_reads_per_minute": 100_000,
                "metrics_token": METRICS_TOKEN,  # as production runs it
                "jobs_interval_seconds": 0,
                "webhook_interval_seconds": 0,
            }
        ),
        Database(settings),
    )
    return app


# Rules JSON Schema cannot state (across fields, or about the outside world), so a schema-valid body can rightly be a 422 here; only the
# positive-data check is lifted, and only for these operations (every other check still runs):
CROSS_FIELD_RULES = {
    # an availability window must start before it ends (a 00:00-00:00 window is generated)
    ("POST", "/v1/allies"),
    ("PATCH", "/v1/me/ally-profile"),
    # an anonymous request carries no contact detail (P3)
    ("POST", "/v1/contact-requests"),
    # a coordinator must name the ally; an ally reporting their own training must not
    ("POST", "/v1/training-records"),
    # a weekly report spans at most 2 years, a monthly one 5 (from/to/interval together)
    ("GET", "/v1/reports/program"),
    ("GET", "/v1/feedback/summary"),
    # the SSRF guard: https only in production, and the host must resolve to a public address
    ("POST", "/v1/webhooks"),
}


METRICS_TOKEN = "fuzz-metrics-" + "t" * 32


def credentials(case: Any, headers: dict[str, str]) -> dict[str, str]:
    """/metrics takes the scrape token, not a JWT; every other operation the caller's token."""
    if case.operation.path == "/metrics":
        return {"Authorization": f"Bearer {METRICS_TOKEN}"}
    return headers


def excluded(case: Any) -> list[Any]:
    key = (case.operation.method.upper(), case.operation.path)
    return [positive_data_acceptance] if key in CROSS_FIELD_RULES else []


def prepare(case: Any, app: FastAPI) -> None:
    """Inputs we do not let Schemathesis invent: ``cursor`` is opaque, it only comes
    from a previous page's ``next_cursor``; any other value is rightly a 422, which the
    positive-data check would read as a valid request refused. (Tampered cursors have their
    own tests per domain.)"""
    if case.query:
        case.query.pop("cursor", None)
    # Same for ``If-Match``: an ETag only comes from a previous read; a made-up one is rightly
    # a 412 (stale-ETag handling has its own tests per domain).
    if case.headers:
        case.headers.pop("If-Match", None)
        # A key names one intended create: reusing a generated "0" with another body is
        # rightly a 422. Each case gets its own key (replays have their own tests).
        if "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
    # The schema was loaded before the app existed (it needs the suite's fixtures): route this
    # case, and every follow-up request a check makes, to the app in-process.
    case.operation.schema.app = app
    case.operation.app = app


@schema.parametrize()
@HYPOTHESIS
def test_api_as_employee(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    prepare(case, fuzzed_app)
    headers = credentials(case, tokens.employee)
    case.call_and_validate(headers=headers, excluded_checks=excluded(case))


@schema.parametrize()
@HYPOTHESIS
def test_api_as_coordinator(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    prepare(case, fuzzed_app)
    headers = credentials(case, tokens.coordinator)
    case.call_and_validate(headers=headers, excluded_checks=excluded(case))


def test_stateful_as_coordinator(
    fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    """Sequences of calls along the links Schemathesis infers (create, then read, change,
    delete what was created), with every check on every step."""
    headers = tokens.coordinator

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            prepare(case, fuzzed_app)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response, excluded_checks=excluded(case), transport_kwargs=kwargs or None
            )

    Workflow.run(
        settings=settings(
            Workflow.TestCase.settings,
            max_examples=MAX_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
        )
    )
