"""A real HTTP receiver on 127.0.0.1 for webhook tests, verifying signatures independently.

Deliberately tiny (HTTP/1.1, Content-Length bodies, one request per connection): it answers
each request with the next scripted status (200 once the script is used up) after an optional
delay, and records what arrived.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    def signed_by(self, secret: str) -> bool:
        """Standard Webhooks verification, written out here rather than imported."""
        key = base64.b64decode(secret.removeprefix("whsec_"))
        content = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.{self.body}"
        expected = base64.b64encode(
            hmac.new(key, content.encode(), hashlib.sha256).digest()
        ).decode()
        offered = [sig.partition(",")[2] for sig in self.headers["webhook-signature"].split()]
        fresh = abs(time.time() - int(self.headers["webhook-timestamp"])) < 300
        return fresh and any(hmac.compare_digest(expected, sig) for sig in offered)


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight_per_id: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _active: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        message_id = headers.get("webhook-id", "")
        self._active[message_id] = self._active.get(message_id, 0) + 1
        self.max_in_flight_per_id[message_id] = max(
            self.max_in_flight_per_id.get(message_id, 0), self._active[message_id]
        )
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else 200
            self.received.append(
                Received(request_line.split(" ")[1], headers, body.decode(), time.time())
            )
        finally:
            self._active[message_id] -= 1
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode()
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
