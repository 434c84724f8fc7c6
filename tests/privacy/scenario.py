"""A full contact-request story through the API, with distinctive values to hunt for later.

Setup (a listed ally) is written straight to the database; everything the requester and the
ally do goes through HTTP. The requester's identity and words are random per run, so finding
one of them anywhere (database bytes, a dump, a log) can only mean this run leaked it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.core.settings import Settings
from tests.factories import make_ally
from tests.helpers import TokenFactory


def _mark(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


@dataclass
class Story:
    sub: str = field(default_factory=lambda: _mark("requester-sub"))
    name: str = field(default_factory=lambda: f"Quentin {_mark('Requestername')}")
    email: str = field(default_factory=lambda: f"{_mark('requester')}@example.com")
    message: str = field(default_factory=lambda: f"I cannot sleep {_mark('message')}")
    contact_detail: str = field(default_factory=lambda: f"+44 7700 {_mark('phone')}")
    alias: str = field(default_factory=lambda: _mark("Alias"))
    thread: list[str] = field(
        default_factory=lambda: [_mark("thread-requester"), _mark("thread-ally")]
    )
    erased_message: str = field(default_factory=lambda: f"Please forget {_mark('erased')}")
    erased_contact_detail: str = field(default_factory=lambda: _mark("erased-contact"))
    erased_alias: str = field(default_factory=lambda: _mark("ErasedAlias"))
    erased_thread: str = field(default_factory=lambda: _mark("erased-thread"))
    ally_sub: str = field(default_factory=lambda: _mark("ally-sub"))
    completed_id: uuid.UUID | None = None
    erased_id: uuid.UUID | None = None

    def secrets(self) -> dict[str, str]:
        """Every value that must appear in no stored byte and no log line."""
        values = {
            "sub": self.sub,
            "name": self.name,
            "email": self.email,
            "message": self.message,
            "contact_detail": self.contact_detail,
            "alias": self.alias,
            "erased message": self.erased_message,
            "erased contact detail": self.erased_contact_detail,
            "erased alias": self.erased_alias,
            "erased thread message": self.erased_thread,
            "ally sub": self.ally_sub,
        }
        values |= {f"thread message {n}": body for n, body in enumerate(self.thread)}
        return values


def find_leaks(haystack: bytes, story: Story) -> list[str]:
    """Which of the story's secrets appear in ``haystack`` (also UTF-16, as some dumps store)."""
    leaks = []
    for label, value in story.secrets().items():
        for encoded in (value.encode(), value.encode("utf-16-le")):
            if encoded in haystack:
                leaks.append(label)
                break
    return leaks


async def run_story(
    requester_http: httpx.AsyncClient,
    ally_http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
) -> Story:
    """Create, read, accept, talk both ways and complete one request; create and erase another.

    Two clients so the requester and the ally can talk to different server processes.
    """
    story = Story()
    ally = await make_ally(session, settings, sub=story.ally_sub, capacity=5)
    me = tokens.headers(story.sub, "employee", name=story.name, email=story.email, country="GB")
    them = tokens.headers(story.ally_sub, "employee")
    base = "/v1/contact-requests"

    created = await requester_http.post(
        base,
        headers=me,
        json={
            "ally_id": str(ally.id),
            "topic": "stress",
            "urgency": "normal",
            "language": "en",
            "preferred_channel": "phone",
            "contact_detail": story.contact_detail,
            "alias": story.alias,
            "message": story.message,
        },
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    for step in (
        ally_http.get(f"{base}/{request_id}", headers=them),
        ally_http.post(f"{base}/{request_id}/accept", headers=them),
        ally_http.get(f"{base}/{request_id}", headers=them),
        requester_http.post(
            f"{base}/{request_id}/messages", headers=me, json={"body": story.thread[0]}
        ),
        ally_http.post(
            f"{base}/{request_id}/messages", headers=them, json={"body": story.thread[1]}
        ),
        requester_http.get(f"{base}/{request_id}/messages", headers=me),
        ally_http.get(f"{base}/{request_id}/messages", headers=them),
        ally_http.post(
            f"{base}/{request_id}/complete",
            headers=them,
            json={"signposted": True, "wellbeing": 4},
        ),
        requester_http.get(f"{base}/{request_id}/access-log", headers=me),
        requester_http.get("/v1/me/contact-requests", headers=me),
    ):
        response = await step
        assert response.status_code < 300, response.text
    story.completed_id = uuid.UUID(request_id)

    second = await requester_http.post(
        base,
        headers=me,
        json={
            "ally_id": str(ally.id),
            "topic": "workload",
            "contact_detail": story.erased_contact_detail,
            "alias": story.erased_alias,
            "message": story.erased_message,
        },
    )
    assert second.status_code == 201, second.text
    second_id = second.json()["id"]
    for step in (
        ally_http.get(f"{base}/{second_id}", headers=them),
        requester_http.post(
            f"{base}/{second_id}/messages", headers=me, json={"body": story.erased_thread}
        ),
        requester_http.delete(f"{base}/{second_id}", headers=me),
    ):
        response = await step
        assert response.status_code < 300, response.text
    story.erased_id = uuid.UUID(second_id)
    return story


@dataclass
class FullStory:
    """``run_story`` plus feedback, anonymous programme feedback, an Idempotency-Key and the
    aggregate reads, with every identifier the run produced."""

    story: Story
    feedback_comment: str = field(default_factory=lambda: f"She listened {_mark('feedback')}")
    programme_comment: str = field(default_factory=lambda: f"More allies {_mark('programme')}")
    idempotency_key: str = field(default_factory=lambda: _mark("idem-key"))
    ids: dict[str, str] = field(default_factory=dict)

    def texts(self) -> dict[str, str]:
        return self.story.secrets() | {
            "request feedback comment": self.feedback_comment,
            "programme feedback comment": self.programme_comment,
        }


async def run_full_story(
    http: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> FullStory:
    """Everything a requester, their ally and programme staff do, once each."""
    story = await run_story(http, http, session, settings, tokens)
    full = FullStory(story)
    me = tokens.headers(story.sub, "employee", name=story.name, email=story.email, country="GB")
    them = tokens.headers(story.ally_sub, "employee")
    base = "/v1/contact-requests"
    assert story.completed_id is not None
    assert story.erased_id is not None
    full.ids |= {"completed request": str(story.completed_id), "erased": str(story.erased_id)}

    feedback = await http.post(
        f"{base}/{story.completed_id}/feedback",
        headers=me,
        json={
            "rating": 4,
            "felt_heard": True,
            "would_recommend": True,
            "comment": full.feedback_comment,
        },
    )
    assert feedback.status_code == 201, feedback.text
    programme = await http.post(
        "/v1/feedback",
        headers=me,
        json={"category": "accessibility", "rating": 2, "comment": full.programme_comment},
    )
    assert programme.status_code == 201, programme.text

    ally = (await http.get("/v1/me/ally-profile", headers=them)).json()
    full.ids["ally"] = ally["id"]
    keyed = {**me, "Idempotency-Key": full.idempotency_key}
    body = {"ally_id": ally["id"], "topic": "sleep", "message": story.message}
    third = await http.post(base, headers=keyed, json=body)
    assert third.status_code == 201, third.text
    replay = await http.post(base, headers=keyed, json=body)
    assert replay.headers.get("idempotent-replayed") == "true"
    full.ids["keyed request"] = third.json()["id"]
    messages = (await http.get(f"{base}/{story.completed_id}/messages", headers=me)).json()
    full.ids |= {f"message {n}": item["id"] for n, item in enumerate(messages["items"])}
    assert (await http.post(f"{base}/{third.json()['id']}/cancel", headers=me)).status_code == 200

    for reader, path in (
        (tokens.coordinator, "/v1/feedback/summary"),
        (them, "/v1/feedback/summary"),
        (tokens.analyst, "/v1/reports/program"),
        (tokens.coordinator, "/v1/reports/program?group_by=topic&interval=month"),
    ):
        response = await http.get(path, headers=reader)
        assert response.status_code == 200, (path, response.text)
    return full
