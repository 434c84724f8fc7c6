"""Schemathesis 4 against the real app: every operation of the contract, all checks, positive
and negative data, as each of the four token roles (employee, coordinator, analyst,
integration); then the stateful phase (call sequences along inferred links) as each role.

Besides its fuzzing, Schemathesis runs its coverage phase (boundary values of every
constraint: lengths, bounds, formats, enums, duplicate query parameters), and fuzz
dictionaries mix unusual values into generated data: the edge days of the calendar for every
``from``/``to``, odd text into every string parameter, extreme integers into every integer
(docs/validation.md). Example counts are printed at the end of the run.

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
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from allyapi.allies.schemas import TIMEZONE_FORMAT
from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.ops.contract import openapi_document
from tests.helpers import TokenFactory
from tests.security.examples import count

MAX_EXAMPLES = 10
ROLES = ("employee", "coordinator", "analyst", "integration")
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

# Unusual data, mixed into what Schemathesis generates (its fuzz dictionaries): the days at
# the edge of what dates hold and of the range the API accepts, text that has broken parsers
# and queries elsewhere, integers at the edge of 32 and 64 bits.
EDGE_DAYS = [
    "0001-01-01",
    "0001-03-01",
    "1969-12-31",
    "1970-01-01",
    "9998-12-31",
    "9999-12-01",
    "9999-12-25",
    "9999-12-31",
]
EDGE_TEXT = [
    "0",
    "-1",
    "1e308",
    "NaN",
    "9" * 40,
    "😀" * 30,
    "\u202e",
    "' OR 1=1 --",
    "%00",
    "../..",
]
EDGE_INTEGERS = [0, -1, 2**31 - 1, 2**31, 2**63, -(2**63)]
CONFIG = {
    "base-url": "http://testserver",
    "dictionaries": {
        "edge-days": {"values": EDGE_DAYS},
        "edge-text": {"values": EDGE_TEXT},
        "edge-integers": {"values": EDGE_INTEGERS},
    },
    "generation": {
        "mode": "all",
        "max-examples": MAX_EXAMPLES,
        "dictionaries": {"integer": {"dictionary": "edge-integers", "probability": 0.2}},
    },
    # Free-text query parameters (a type-wide string binding would also reach formats the
    # contract cannot state, such as an IANA zone name, and read as valid data refused).
    "parameters": {
        "query.from": {"dictionary": "edge-days", "probability": 0.5},
        "query.to": {"dictionary": "edge-days", "probability": 0.5},
        "query.q": {"dictionary": "edge-text", "probability": 0.2},
        "query.topic": {"dictionary": "edge-text", "probability": 0.2},
        "query.location": {"dictionary": "edge-text", "probability": 0.2},
    },
    # Boundary values of every constraint (on by default; stated so it stays on).
    "phases": {"coverage": {"enabled": True, "generate-duplicate-query-parameters": True}},
}

# The committed contract's source: the document integrators get (fixed settings, no secret).
schema = schemathesis.openapi.from_dict(
    openapi_document(), config=SchemathesisConfig.from_dict(CONFIG)
)
# Analysts and integrations are refused most operations before any input is read, and what
# an input does is the same for every role: they get the fuzzing phase everywhere (each
# answer and its body checked against the contract) and the coverage phase where only they
# can go. Keeps the whole file within a few minutes per database.
LEAN = {**CONFIG, "phases": {"coverage": {"enabled": False}}}
lean_schema = schemathesis.openapi.from_dict(
    openapi_document(), config=SchemathesisConfig.from_dict(LEAN)
)
integration_only = schema.include(path="/v1/allies/roster-sync")


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
    # an anonymous request carries no contact detail (docs/privacy.md, P3)
    ("POST", "/v1/contact-requests"),
    # a coordinator must name the ally; an ally reporting their own training must not
    ("POST", "/v1/training-records"),
    # a weekly report spans at most 2 years, a monthly one 5 (from/to/interval together), and
    # days run from 1970-01-01 to 9998-12-31 (formatMinimum/formatMaximum, which Schemathesis
    # does not read)
    ("GET", "/v1/reports/program"),
    ("GET", "/v1/feedback/summary"),
    # the SSRF guard: https only in production, and the host must resolve to a public address
    ("POST", "/v1/webhooks"),
    # available_at and available_now exclude each other, and available_at lies within
    # 2000-01-01..2100-01-01 (formatMinimum/formatMaximum, which Schemathesis does not read)
    ("GET", "/v1/allies"),
    # since must come before until
    ("GET", "/v1/audit-events"),
}


# Cases whose generated input ``prepare`` replaced (by ``id``): a negative case may have lost
# the very part that made it invalid, so "invalid data must be rejected" cannot apply to it.
ALTERED: set[int] = set()


# SCIM's own answer for what a provider does not support is 501 (RFC 7644 §3.12): searching
# every resource type at once. The contract declares it; only the "no 5xx" check is lifted.
UNSUPPORTED_BY_DESIGN = {("POST", "/scim/v2/.search")}


def excluded(case: Any) -> list[Any]:
    key = (case.operation.method.upper(), case.operation.path)
    checks = [positive_data_acceptance] if key in CROSS_FIELD_RULES else []
    if key in UNSUPPORTED_BY_DESIGN:
        checks.append(not_a_server_error)
    if id(case) in ALTERED:
        checks.append(negative_data_rejection)
    return checks


def prepare(case: Any, app: FastAPI) -> None:
    """Inputs we do not let Schemathesis invent: ``cursor`` is opaque, it only comes
    from a previous page's ``next_cursor``; any other value is rightly a 422, which the
    positive-data check would read as a valid request refused. (Tampered cursors have their
    own tests: tests/core/test_cursors.py, and the route sweep signs odd ones.)"""
    altered = False
    if case.query and "cursor" in case.query:
        case.query.pop("cursor")
        altered = True
    # Same for ``If-Match``: an ETag only comes from a previous read; a made-up one is rightly
    # a 412 (stale-ETag handling has its own tests per domain).
    if case.headers:
        altered = altered or "If-Match" in case.headers or "Idempotency-Key" in case.headers
        case.headers.pop("If-Match", None)
        # A key names one intended create: reusing a generated "0" with another body is
        # rightly a 422. Each case gets its own key (replays have their own tests).
        if "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = str(uuid.uuid4())
    if altered:
        ALTERED.add(id(case))
    else:
        ALTERED.discard(id(case))
    # The schema was loaded before the app existed (it needs the suite's fixtures): route this
    # case, and every follow-up request a check makes, to the app in-process.
    case.operation.schema.app = app
    case.operation.app = app


METRICS_TOKEN = "fuzz-metrics-" + "t" * 32


def credentials(case: Any, headers: dict[str, str]) -> dict[str, str]:
    """/metrics takes the scrape token, not a JWT; every other operation the caller's token."""
    if case.operation.path == "/metrics":
        return {"Authorization": f"Bearer {METRICS_TOKEN}"}
    return headers


def run_case(case: Any, app: FastAPI, tokens: TokenFactory, role: str) -> None:
    prepare(case, app)
    count(f"schemathesis as {role}")
    headers = credentials(case, getattr(tokens, role))
    case.call_and_validate(headers=headers, excluded_checks=excluded(case))


@schema.parametrize()
@HYPOTHESIS
def test_api_as_employee(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    run_case(case, fuzzed_app, tokens, "employee")


@schema.parametrize()
@HYPOTHESIS
def test_api_as_coordinator(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    run_case(case, fuzzed_app, tokens, "coordinator")


@lean_schema.parametrize()
@HYPOTHESIS
def test_api_as_analyst(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    run_case(case, fuzzed_app, tokens, "analyst")


@lean_schema.parametrize()
@HYPOTHESIS
def test_api_as_integration(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    run_case(case, fuzzed_app, tokens, "integration")


@integration_only.parametrize()
@HYPOTHESIS
def test_integration_only_operations_at_their_boundaries(
    case: Any, fuzzed_app: FastAPI, tokens: TokenFactory, database: Database
) -> None:
    run_case(case, fuzzed_app, tokens, "integration")


@pytest.mark.parametrize("role", ROLES)
def test_stateful(fuzzed_app: FastAPI, tokens: TokenFactory, database: Database, role: str) -> None:
    """Sequences of calls along the links Schemathesis infers (create, then read, change,
    delete what was created), with every check on every step, as each role."""
    headers = getattr(tokens, role)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            prepare(case, fuzzed_app)
            count(f"schemathesis stateful steps as {role}")

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
