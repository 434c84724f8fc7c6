"""A small HTTP/1.1 load generator on asyncio streams (keep-alive, no client library).

Two modes:
- closed loop (``rate=None``): ``connections`` clients send back to back for ``seconds``, as
  wrk does; used when wrk is not installed (CI's smoke run needs no apt);
- open loop (``rate=R``): request *i* is due at ``start + i / R`` whatever happened before,
  and its latency counts from when it was due, not from when a free connection sent it. That is
  wrk2's correction for coordinated omission; wrk2 is not packaged in Debian, so the "p99 at
  half the baseline's maximum rate" is measured with this.

Latencies are in milliseconds. ``make_request(i)`` returns the raw bytes of request *i*.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RequestMaker = Callable[[int], bytes]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0  # non-2xx answers
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(len(ordered) * p / 100), len(ordered) - 1)]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


@dataclass
class _Plan:
    make: RequestMaker
    deadline: float
    rate: float | None
    start: float
    next_index: int = 0

    def take(self) -> tuple[int, float] | None:
        """The next request's index and the time it is due (now, in a closed loop)."""
        index = self.next_index
        due = self.start + index / self.rate if self.rate else time.perf_counter()
        if due >= self.deadline:
            return None
        self.next_index += 1
        return index, due


async def _client(host: str, port: int, plan: _Plan, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (slot := plan.take()) is not None:
            index, due = slot
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(plan.make(index))
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - due) * 1000)
            result.requests += 1
            if not 200 <= status < 300:
                result.errors += 1
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    make: RequestMaker,
    *,
    seconds: float,
    connections: int,
    rate: float | None = None,
) -> LoadResult:
    start = time.perf_counter()
    plan = _Plan(make, start + seconds, rate, start)
    result = LoadResult()
    await asyncio.gather(*(_client(host, port, plan, result) for _ in range(connections)))
    result.seconds = time.perf_counter() - start
    return result


def http_request(
    method: str, path: str, headers: dict[str, str], body: bytes = b"", host: str = "127.0.0.1"
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
