"""An insider with legitimate tokens who reads every aggregate again and again.

The aggregate operations are found in the contract (every operation marked ``x-aggregate``,
core/http/openapi.py), their query variants in its parameters (each enumerated value; the
insider's own ally for an ``ally_id``), their readers by trying every role on them: a new
aggregate operation is attacked without a line of test code.

The world is built so that every cell the insider can touch holds exactly a multiple of k
people, all of them released: a coordinator, an analyst and ally A (who helped most of
them) read everything. Then the insider makes people contribute one at a time through the
API, lets the contributions arrive (the background pass, aggregates/arrivals.py) and reads
again. With fewer than k new people nothing released may move at all: any difference is
a figure that moved by fewer than k people. With k new people something must move, or the
test could never fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import product
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.feedback.models import ProgramFeedback, RequestFeedback
from tests.feedback.factories import ally, contact_request
from tests.helpers import TokenFactory

Arrive = Callable[[], Awaitable[int]]
INSIDER_ALLY = "insider-ally"
PERSONAS = ("coordinator", "analyst", "ally", "employee", "integration")


def persona(tokens: TokenFactory, name: str) -> dict[str, str]:
    return {
        "coordinator": tokens.coordinator,
        "analyst": tokens.analyst,
        "ally": tokens.headers(INSIDER_ALLY, "employee"),
        "employee": tokens.employee,
        "integration": tokens.integration,
    }[name]


@dataclass(frozen=True)
class Read:
    path: str
    reader: str
    query: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        query = "&".join(f"{name}={value}" for name, value in self.query)
        return f"{self.reader} GET {self.path}?{query}"


def aggregate_operations(app: FastAPI) -> dict[str, list[dict[str, Any]]]:
    """Path -> query parameters of every GET the contract marks as an aggregate."""
    found = {}
    for path, item in app.openapi()["paths"].items():
        operation = item.get("get", {})
        if operation.get("x-aggregate"):
            found[path] = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    return found


def variants(parameters: list[dict[str, Any]], ally_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """Every combination of enumerated values (absent too, when there is no default) and the
    insider's ally for ``*_id`` parameters; dates stay at their defaults (the last year)."""
    choices: list[list[tuple[str, str] | None]] = []
    for parameter in parameters:
        schema, name = parameter.get("schema", {}), parameter["name"]
        if "enum" in schema:
            values: list[tuple[str, str] | None] = [(name, str(v)) for v in schema["enum"]]
            choices.append(values if "default" in schema else [None, *values])
        elif name.endswith("_id"):
            choices.append([None, (name, str(ally_id))])
    return [tuple(c for c in combo if c is not None) for combo in product(*choices)]


@dataclass
class World:
    ally_id: uuid.UUID
    released: list[str] = field(default_factory=list)  # requesters whose feedback is shown
    stock: dict[str, list[tuple[str, uuid.UUID]]] = field(default_factory=dict)


class Insider:
    def __init__(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tokens: TokenFactory,
        session: AsyncSession,
        arrive: Arrive,
    ) -> None:
        self.app = app
        self.client = client
        self.tokens = tokens
        self.session = session
        self.arrive = arrive
        self.k = tokens.settings.k_anonymity
        self.reads: list[Read] = []

    # The world ---------------------------------------------------------------------------

    async def build(self, *stocks: str) -> World:
        """k allies (A and k-1 others, all listed); k requesters helped by A who gave
        feedback; k requesters helped by the others (so k allies debriefed); k anonymous
        programme answers; then k more requesters per stock, ready for an action."""
        k = self.k
        insider: Ally = await ally(self.session, self.tokens, INSIDER_ALLY, max_open_requests=50)
        others = [await ally(self.session, self.tokens, f"other-ally-{i}") for i in range(1, k)]
        world = World(ally_id=insider.id)
        for index in range(k):
            sub = f"helped-{index}"
            request = await self._request(sub, insider.id, "completed")
            await self._feedback(request, rating=5)
            world.released.append(sub)
        for index, helper in enumerate([*others, insider]):
            await self._request(f"elsewhere-{index}", helper.id, "completed")
        for _ in range(k):
            self.session.add(
                ProgramFeedback(
                    org_id=insider.org_id, category="training", rating=5, created_on=date.today()
                )
            )
        await self.session.commit()
        for stock in stocks:
            world.stock[stock] = await self._stock(stock, insider.id)
        await self.arrive()
        return world

    async def _request(
        self, sub: str, ally_id: uuid.UUID, status: str, *, created_at: datetime | None = None
    ) -> ContactRequest:
        done = status == "completed"
        return await contact_request(
            self.session,
            self.tokens,
            sub,
            ally_id=ally_id,
            status=status,
            created_at=created_at or datetime.now(UTC),
            accepted_after=None if status == "pending" else timedelta(hours=1),
            signposted=True if done else None,
            wellbeing=4 if done else None,
        )

    async def _feedback(self, request: ContactRequest, *, rating: int) -> None:
        self.session.add(
            RequestFeedback(
                org_id=request.org_id,
                request_id=request.id,
                ally_id=request.ally_id,
                topic=request.topic,
                rating=rating,
                felt_heard=True,
                would_recommend=True,
                created_on=date.today(),
            )
        )
        await self.session.commit()

    async def _stock(self, stock: str, ally_id: uuid.UUID) -> list[tuple[str, uuid.UUID]]:
        """k more people in every request cell, each with a request in the stock's state."""
        status = {"pending": "pending", "accepted": "accepted", "completed": "completed"}
        made = []
        if stock in status:
            for index in range(self.k):
                sub = f"{stock}-{index}"
                made.append((sub, (await self._request(sub, ally_id, status[stock])).id))
        elif stock == "old_accepted":  # a settled week, ten weeks ago
            old = datetime.now(UTC) - timedelta(weeks=10)
            for index in range(self.k):
                sub = f"old-{index}"
                request = await self._request(sub, ally_id, "accepted", created_at=old)
                made.append((sub, request.id))
        elif stock == "padding":  # one person with k requests, and k - 1 others with one
            for _ in range(self.k):
                made.append(("padder", (await self._request("padder", ally_id, "completed")).id))
            for index in range(self.k - 1):
                sub = f"filler-{index}"
                made.append((sub, (await self._request(sub, ally_id, "completed")).id))
        else:
            raise AssertionError(f"unknown stock {stock}")
        return made

    # Reading -------------------------------------------------------------------------------

    async def discover(self, world: World) -> list[Read]:
        """Every (operation, variant, role) that answers 200: what the insider can read."""
        operations = aggregate_operations(self.app)
        assert len(operations) >= 2, "the contract marks no aggregate operations"
        reads = []
        for path, parameters in operations.items():
            readable = []
            for query, name in product(variants(parameters, world.ally_id), PERSONAS):
                response = await self.client.get(
                    path, params=dict(query), headers=persona(self.tokens, name)
                )
                assert response.status_code in (200, 403, 404), (path, name, response.text)
                if response.status_code == 200:
                    readable.append(Read(path, name, query))
            assert readable, f"nobody may read {path}?"
            reads += readable
        self.reads = reads
        return reads

    async def snapshot(self) -> dict[Read, Any]:
        found = {}
        for read in self.reads:
            response = await self.client.get(
                read.path, params=dict(read.query), headers=persona(self.tokens, read.reader)
            )
            assert response.status_code == 200, (str(read), response.text)
            found[read] = _comparable(response.json())
        return found

    async def moved(self, before: dict[Read, Any]) -> list[str]:
        """The reads whose answer is not what it was (after letting contributions arrive)."""
        await self.arrive()
        after = await self.snapshot()
        return [str(read) for read in before if before[read] != after[read]]


def _comparable(body: Any) -> Any:
    """Comments come in random order: compare them as a sorted list."""
    if isinstance(body, dict):
        return {
            key: sorted(value) if key == "items" and isinstance(value, list) else _comparable(value)
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [_comparable(item) for item in body]
    return body


# Actions: one person's contribution each ---------------------------------------------------

Action = Callable[[Insider, World, int], Awaitable[None]]


async def _ok(response: httpx.Response, status: int = 200) -> None:
    assert response.status_code == status, response.text


async def create(insider: Insider, world: World, index: int) -> None:
    sub = f"new-requester-{index}"
    body = {"ally_id": str(world.ally_id), "topic": "stress", "message": "Could we talk?"}
    headers = insider.tokens.headers(sub, "employee")
    await _ok(await insider.client.post("/v1/contact-requests", json=body, headers=headers), 201)


async def _as_ally(insider: Insider, path: str, body: dict[str, Any] | None = None) -> None:
    headers = insider.tokens.headers(INSIDER_ALLY, "employee")
    await _ok(await insider.client.post(path, json=body, headers=headers))


async def accept(insider: Insider, world: World, index: int) -> None:
    _, request_id = world.stock["pending"][index]
    await _as_ally(insider, f"/v1/contact-requests/{request_id}/accept")


async def complete(insider: Insider, world: World, index: int) -> None:
    _, request_id = world.stock["accepted"][index]
    body = {"signposted": index % 2 == 0, "wellbeing": 1}
    await _as_ally(insider, f"/v1/contact-requests/{request_id}/complete", body)


async def complete_old(insider: Insider, world: World, index: int) -> None:
    _, request_id = world.stock["old_accepted"][index]
    body = {"signposted": False, "wellbeing": 1}
    await _as_ally(insider, f"/v1/contact-requests/{request_id}/complete", body)


async def give_feedback(insider: Insider, world: World, index: int) -> None:
    sub, request_id = world.stock["completed"][index]
    body = {"rating": 1, "felt_heard": False, "would_recommend": False, "comment": f"no {index}"}
    headers = insider.tokens.headers(sub, "employee")
    path = f"/v1/contact-requests/{request_id}/feedback"
    await _ok(await insider.client.post(path, json=body, headers=headers), 201)


async def answer_programme(insider: Insider, world: World, index: int) -> None:
    body = {"category": "training", "rating": 1, "comment": f"poor {index}"}
    headers = insider.tokens.headers(f"programme-{index}", "employee")
    await _ok(await insider.client.post("/v1/feedback", json=body, headers=headers), 201)


async def list_ally(insider: Insider, world: World, index: int) -> None:
    headers = insider.tokens.headers(f"volunteer-{index}", "employee")
    created = await insider.client.post(
        "/v1/allies", json={"display_name": f"Volunteer {index}"}, headers=headers
    )
    await _ok(created, 201)
    approve = f"/v1/allies/{created.json()['id']}/approve"
    await _ok(await insider.client.post(approve, headers=insider.tokens.coordinator))


async def erase(insider: Insider, world: World, index: int) -> None:
    """A requester whose feedback is released erases their request (never moves a figure)."""
    sub = world.released[index]
    headers = insider.tokens.headers(sub, "employee")
    mine = await insider.client.get("/v1/me/contact-requests", headers=headers)
    await _ok(mine)
    [request] = mine.json()["items"]
    await _ok(
        await insider.client.delete(f"/v1/contact-requests/{request['id']}", headers=headers), 204
    )


ACTIONS: dict[str, tuple[Action, tuple[str, ...]]] = {
    "a request is made": (create, ()),
    "an ally accepts": (accept, ("pending",)),
    "an ally completes (signposting, wellbeing)": (complete, ("accepted",)),
    "a request of a settled week is completed": (complete_old, ("old_accepted",)),
    "a requester gives feedback": (give_feedback, ("completed",)),
    "an employee answers the programme survey": (answer_programme, ()),
    "an ally is listed": (list_ally, ()),
}
