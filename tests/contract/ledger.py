"""Every answer any test receives is one the contract describes.

The suite's ``client`` records each response. At the end of the run, a response whose status
the operation does not declare, or that carries a header clients rely on (``ETag``,
``Location``, ``Idempotent-Replayed``, ``RateLimit*``, ``Retry-After``, ``WWW-Authenticate``)
that the contract does not declare for that status, fails the run. So the contract cannot
fall behind the app: a route that starts sending a header must declare it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

POLICED_HEADERS = frozenset(
    {
        "etag",
        "location",
        "idempotent-replayed",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
        "www-authenticate",
    }
)
# Answered by middleware before any route, for any path: method not allowed, oversized headers.
ANY_OPERATION_STATUSES = frozenset({405, 431})


@dataclass
class Ledger:
    document: dict[str, Any]
    problems: set[str] = field(default_factory=set)
    seen: int = 0
    _routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for template in self.document.get("paths", {}):
            pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
            self._routes.append((re.compile(f"^{pattern}$"), template))
        # Fixed paths before templates (/v1/allies/suggestions before /v1/allies/{ally_id}).
        self._routes.sort(key=lambda route: route[1].count("{"))

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return template, operation
        return None

    async def record(self, response: httpx.Response) -> None:
        found = self._operation(response.request.method, response.request.url.path)
        if found is None or response.status_code in ANY_OPERATION_STATUSES:
            return
        self.seen += 1
        template, operation = found
        where = f"{response.request.method} {template} {response.status_code}"
        declared = operation.get("responses", {}).get(str(response.status_code))
        if declared is None:
            self.problems.add(f"{where}: status not in the contract")
            return
        names = {name.lower() for name in declared.get("headers", {})}
        for header in POLICED_HEADERS & {name.lower() for name in response.headers}:
            if header not in names:
                self.problems.add(f"{where}: header {header} not in the contract")
