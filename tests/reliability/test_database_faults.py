"""Database faults under load (docs/operations.md), on a private PostgreSQL cluster.

One ``allyapi serve`` process runs against a cluster this module owns; the test restarts that
cluster while clients create and read. What must hold:

- a request that meets the outage fails fast with a 503 problem (``Retry-After``, no detail
  about the database), never a 500 and never a hang past the client's timeout;
- the service recovers by itself: requests after the restart succeed, with no server restart;
- every write acknowledged with a 2xx is in the database afterwards (acknowledged ids are
  counted against rows), and nothing unacknowledged was invented;
- connections the server dropped while idle are found dead before use (the pool's liveness
  check, core/db/session.py).

PostgreSQL only (the private cluster needs its binaries; the SQLite default has no server to
lose). The shared PostgreSQL on 5432 is never stopped or restarted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from allyapi.allies.models import Ally
from allyapi.contact_requests.models import ContactRequest
from allyapi.core.db.migrations import upgrade
from allyapi.core.db.session import Database
from allyapi.core.settings import Settings
from allyapi.resources.models import Resource
from tests.concurrency.conftest import Server
from tests.factories import make_ally, process_env
from tests.helpers import TokenFactory
from tests.reliability.harness import PrivateCluster, counts, start_server, stop_server

pytestmark = pytest.mark.postgres_only

ALLY_CAPACITY = 50  # the most an ally may hold (CHECK constraint)
CLIENT_TIMEOUT = 10.0  # a request slower than this is a hang
LEAK_MARKERS = (b"asyncpg", b"sqlalchemy", b"postgres", b"Traceback", b"127.0.0.1")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    private = PrivateCluster.create()
    try:
        yield private
    finally:
        private.destroy()


@pytest.fixture(scope="module")
def private_settings(cluster: PrivateCluster, settings: Settings) -> Settings:
    upgrade(cluster.url())
    return settings.model_copy(update={"database_url": cluster.url()})


@pytest.fixture(scope="module")
async def server(
    private_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    env = process_env(
        private_settings,
        ALLYAPI_RATE_LIMIT_WRITES_PER_MINUTE="100000",
        ALLYAPI_RATE_LIMIT_READS_PER_MINUTE="100000",
        ALLYAPI_DB_POOL_SIZE="5",
        ALLYAPI_LOG_LEVEL="INFO",
    )
    logs = tmp_path_factory.mktemp("fault-server")
    started = await start_server(env, logs / "server.log", cwd=private_settings.data_dir)
    try:
        yield started
    finally:
        await stop_server(started)


@pytest.fixture
async def private_db(private_settings: Settings) -> AsyncIterator[Database]:
    database = Database(private_settings)
    try:
        yield database
    finally:
        await database.dispose()


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    resources: set[str] = field(default_factory=set)
    requests: set[str] = field(default_factory=set)
    attempted_creates: int = 0
    hangs: int = 0
    bad: list[str] = field(default_factory=list)

    def check_problem(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            if response.status_code != 503:
                self.bad.append(f"{response.status_code}")
            elif (
                not response.headers.get("content-type", "").startswith("application/problem+json")
                or int(response.headers.get("Retry-After", "0")) <= 0
            ):
                self.bad.append("503 without problem+json and Retry-After")
            elif any(marker in response.content for marker in LEAK_MARKERS):
                self.bad.append("503 body names the database")


async def _client_loop(
    http: httpx.AsyncClient,
    tokens: TokenFactory,
    allies: list[Ally],
    tally: Tally,
    worker: int,
    creates: int,
    stop_at: float,
) -> None:
    coordinator = tokens.coordinator
    loop = asyncio.get_running_loop()
    for n in range(creates):
        if loop.time() > stop_at:
            return
        try:
            tally.attempted_creates += 1
            if n % 2:
                sub = f"load-{worker}-{n}"
                ally = allies[(n // 2) // ALLY_CAPACITY]
                body = {"ally_id": str(ally.id), "topic": "stress", "message": f"m{n}"}
                response = await http.post(
                    "/v1/contact-requests", json=body, headers=tokens.headers(sub, "employee")
                )
                if response.status_code == 201:
                    tally.requests.add(response.json()["id"])
            else:
                body = {"name": f"Line {worker}-{n}", "category": "guide"}
                response = await http.post("/v1/resources", json=body, headers=coordinator)
                if response.status_code == 201:
                    tally.resources.add(response.json()["id"])
            tally.statuses[response.status_code] += 1
            tally.check_problem(response)
            read = await http.get("/v1/resources?limit=5", headers=coordinator)
            tally.statuses[read.status_code] += 1
            tally.check_problem(read)
        except httpx.TimeoutException:
            tally.hangs += 1
        except httpx.TransportError as exc:
            tally.bad.append(f"transport {type(exc).__name__}")
        await asyncio.sleep(0.02)


async def _stored_ids(database: Database) -> tuple[set[str], set[str]]:
    async with database.sessionmaker() as session:
        resources = await session.scalars(sa.select(col(Resource.id)))
        requests = await session.scalars(sa.select(col(ContactRequest.id)))
        return {str(i) for i in resources}, {str(i) for i in requests}


async def test_restart_under_load_fails_fast_recovers_and_loses_no_acknowledged_write(
    cluster: PrivateCluster,
    server: Server,
    private_db: Database,
    private_settings: Settings,
    tokens: TokenFactory,
) -> None:
    workers, per_worker = 6, counts(50, 200)  # 300 creates (plus a read after each)
    async with private_db.sessionmaker() as session:
        allies = [
            [
                await make_ally(session, private_settings, capacity=ALLY_CAPACITY)
                for _ in range(per_worker // (2 * ALLY_CAPACITY) + 1)
            ]
            for _ in range(workers)
        ]
    tally = Tally()
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=CLIENT_TIMEOUT, limits=limits
    ) as http:
        stop_at = loop.time() + counts(25, 120)
        load = [
            asyncio.create_task(
                _client_loop(http, tokens, allies[w], tally, w, per_worker, stop_at)
            )
            for w in range(workers)
        ]
        await asyncio.sleep(3)  # the load is running and writes are being acknowledged
        acknowledged_before = len(tally.resources) + len(tally.requests)
        # "immediate" is a crash: no checkpoint, backends killed mid-statement; recovery
        # replays the WAL on start. Off the event loop, so the clients keep running meanwhile.
        await asyncio.to_thread(cluster.restart, "immediate")
        await asyncio.wait_for(asyncio.gather(*load), timeout=counts(60, 200))

        # Recovered by itself: a fresh round of requests all succeed, the server never restarted.
        after = [
            await http.get("/v1/resources?limit=1", headers=tokens.coordinator) for _ in range(5)
        ]
    print(f"restart under load: {dict(tally.statuses)}, acknowledged before {acknowledged_before}")
    assert [r.status_code for r in after] == [200] * 5
    assert server.process.returncode is None
    assert acknowledged_before > 0, tally
    assert tally.bad == [], tally.bad[:10]
    assert tally.hangs == 0
    assert set(tally.statuses) <= {200, 201, 503}, tally.statuses
    stored_resources, stored_requests = await _stored_ids(private_db)
    assert tally.resources <= stored_resources, "an acknowledged resource was lost"
    assert tally.requests <= stored_requests, "an acknowledged contact request was lost"
    # Nothing invented: rows beyond the acknowledged ones can only be writes whose commit
    # reached the disk while the connection died before the answer (reported as 503).
    unacknowledged = len(stored_resources | stored_requests) - len(tally.resources | tally.requests)
    assert 0 <= unacknowledged <= tally.statuses[503]
    assert tally.attempted_creates >= workers * 10


async def test_a_stopped_database_answers_503_at_once_and_the_next_start_is_picked_up(
    cluster: PrivateCluster, server: Server, tokens: TokenFactory
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as http:
        assert (await http.get("/v1/resources", headers=tokens.coordinator)).status_code == 200
        await asyncio.to_thread(cluster.stop, "fast")
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            read = await http.get("/v1/resources", headers=tokens.coordinator)
            write = await http.post(
                "/v1/resources",
                json={"name": "During the outage", "category": "guide"},
                headers=tokens.coordinator,
            )
            elapsed = loop.time() - started
        finally:
            await asyncio.to_thread(cluster.start)
        after = await http.get("/v1/resources", headers=tokens.coordinator)

    for response in (read, write):
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["Retry-After"] == "2"
        assert not any(marker in response.content for marker in LEAK_MARKERS), response.text
        assert response.json()["title"] == "Service unavailable"
    assert elapsed < 5, f"two requests took {elapsed:.1f}s with the database down"
    assert after.status_code == 200
    assert all(item["name"] != "During the outage" for item in after.json()["items"])


async def test_idle_connections_killed_by_the_server_are_replaced_before_use(
    cluster: PrivateCluster, server: Server, tokens: TokenFactory
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as http:
        # Fill the server's pool with several idle connections.
        warm = await asyncio.gather(
            *(http.get("/v1/resources", headers=tokens.coordinator) for _ in range(8))
        )
        assert {r.status_code for r in warm} == {200}
        admin = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
        try:
            killed = await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'postgres' AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend') AS t"
            )
        finally:
            await admin.close()
        assert killed >= 1
        responses = [await http.get("/v1/resources", headers=tokens.coordinator) for _ in range(10)]
        write = await http.post(
            "/v1/resources",
            json={"name": f"After the purge {uuid.uuid4().hex[:6]}", "category": "guide"},
            headers=tokens.coordinator,
        )
    assert [r.status_code for r in responses] == [200] * 10
    assert write.status_code == 201, write.text
