"""A typed client generated with openapi-python-client walks the whole journey.

Choice (cheaper and reliable): the client is generated into a temporary directory on every
run (about a second) rather than committed, so it can never be stale and no generated code is
reviewed or linted. It is generated from the document ``allyapi openapi`` writes to
openapi/openapi.json (tests/contract checks the committed file is that document), then driven
through the real ASGI app with an httpx transport:

volunteer → approve → training (self-reported, verified) → listed → request → accept →
message → complete → feedback → report.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from allyapi.core.db.models import today
from allyapi.ops.contract import openapi_document, render
from tests.helpers import TokenFactory

PACKAGE = "allyapi_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    where = tmp_path_factory.mktemp("client")
    spec = where / "openapi.json"
    spec.write_text(render(openapi_document()), encoding="utf-8")
    config = where / "config.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter run on the output
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(  # noqa: S603 - a pinned tool from our own venv
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout  # every operation and schema generated
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Api:
    """``api.allies.volunteer_as_ally`` → the generated module's ``asyncio_detailed``."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package

    def __getattr__(self, tag: str) -> Any:
        package = self.package

        class Tag:
            def __getattr__(self, operation: str) -> Any:
                module = importlib.import_module(f"{package.__name__}.api.{tag}.{operation}")
                return module.asyncio_detailed

        return Tag()

    def model(self, name: str, data: dict[str, Any]) -> Any:
        return getattr(importlib.import_module(f"{self.package.__name__}.models"), name).from_dict(
            data
        )


def ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content
    return response.parsed


async def test_the_whole_journey_through_the_generated_client(
    generated: ModuleType, app: Any, tokens: TokenFactory
) -> None:
    api = Api(generated)
    transport = httpx.ASGITransport(app=app)

    def as_(token: str) -> Any:
        client = generated.AuthenticatedClient(base_url="http://testserver", token=token)
        return client.set_async_httpx_client(
            httpx.AsyncClient(
                transport=transport,
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {token}"},
            )
        )

    ally_person = as_(tokens.token("ally-sam", "employee"))
    coordinator = as_(tokens.token("coord-1", "employee", "coordinator"))
    requester = as_(tokens.token("emp-7", "employee", country="GB"))
    analyst = as_(tokens.token("analyst-1", "analyst"))

    profile = {
        "display_name": "Sam Ally",
        "languages": ["en"],
        "topics": ["stress"],
        "timezone": "Europe/London",
    }
    ally = ok(
        await api.allies.volunteer_as_ally(
            client=ally_person, body=api.model("AllyCreate", profile)
        ),
        201,
    )
    assert ally.status == "applied"

    course = ok(
        await api.training.create_training_course(
            client=coordinator,
            body=api.model(
                "TrainingCourseCreate",
                {"name": "Mental Health First Aid", "validity_months": 24, "required": True},
            ),
        ),
        201,
    )
    approved = ok(await api.allies.approve_ally(ally.id, client=coordinator), 200)
    assert approved.listed is False  # approved, but the required course is missing

    record = ok(
        await api.training.create_training_record(
            client=ally_person,
            body=api.model(
                "TrainingRecordCreate",
                {
                    "course_id": str(course.id),
                    "completed_on": (today() - timedelta(days=7)).isoformat(),
                },
            ),
        ),
        201,
    )
    assert record.verified is False
    verified = ok(await api.training.verify_training_record(record.id, client=coordinator), 200)
    assert verified.verified is True

    listed = ok(await api.allies.get_ally(ally.id, client=requester), 200)
    assert listed.display_name == "Sam Ally"

    request = ok(
        await api.contact_requests.create_contact_request(
            client=requester,
            idempotency_key=str(uuid.uuid4()),
            body=api.model(
                "NamedContactRequestCreate",
                {"ally_id": str(ally.id), "topic": "stress", "message": "Could we talk this week?"},
            ),
        ),
        201,
    )
    assert request.status == "pending"

    accepted = ok(
        await api.contact_requests.accept_contact_request(request.id, client=ally_person), 200
    )
    assert accepted.status == "accepted"
    ok(
        await api.contact_requests.post_contact_request_message(
            request.id, client=ally_person, body=api.model("MessageCreate", {"body": "Of course."})
        ),
        201,
    )
    ok(
        await api.contact_requests.post_contact_request_message(
            request.id, client=requester, body=api.model("MessageCreate", {"body": "Thanks!"})
        ),
        201,
    )
    thread = ok(
        await api.contact_requests.list_contact_request_messages(request.id, client=requester), 200
    )
    assert [m.author for m in thread.items] == ["ally", "requester"]

    completed = ok(
        await api.contact_requests.complete_contact_request(
            request.id,
            client=ally_person,
            body=api.model("CompleteBody", {"signposted": False, "wellbeing": 4}),
        ),
        200,
    )
    assert completed.status == "completed"

    ok(
        await api.feedback.give_request_feedback(
            request.id,
            client=requester,
            body=api.model(
                "RequestFeedbackCreate", {"rating": 5, "felt_heard": True, "would_recommend": True}
            ),
        ),
        201,
    )

    report = ok(await api.reports.get_program_report(client=analyst), 200)
    assert report.to_dict()  # one requester: every cell below k is suppressed, still a report

    # Sam published no availability windows: never available, at any instant.
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    free = ok(await api.allies.list_allies(client=requester, available_at=at), 200)
    assert free.items == []

    # The right of access: the requester's own document, as the contract types it.
    mine = ok(await api.export.export_my_data(client=requester), 200)
    assert [r.message for r in mine.requests] == ["Could we talk this week?"]
    assert [m.body for m in mine.requests[0].messages] == ["Of course.", "Thanks!"]
    assert mine.programme_feedback_included is False
    assert mine.ally is None

    # The coordinator's approval and verification, in the programme's audit trail.
    trail = ok(await api.audit.list_audit_events(client=coordinator), 200)
    actions = {event.action for event in trail.items}
    assert {"ally.approve", "training_record.verify", "training_course.create"} <= actions
