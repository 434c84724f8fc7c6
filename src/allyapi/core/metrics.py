"""Prometheus text metrics: request counts and latency histograms per route template.

Kept in process memory on purpose: Prometheus scrapes each process and sums them, which is
how its counters are meant to work (this is observability, not shared application state).
"""

from __future__ import annotations

import time
from collections import defaultdict

from starlette.routing import Match, replace_params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Registry:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.histograms: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.counts[(method, route, str(status))] += 1
        key = (method, route)
        buckets = self.histograms.setdefault(key, [0] * (len(BUCKETS) + 1))
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[index] += 1
                break
        else:
            buckets[-1] += 1
        self.sums[key] += seconds

    def render(self) -> str:
        lines = [
            "# HELP allyapi_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE allyapi_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.counts.items()):
            lines.append(
                f'allyapi_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP allyapi_http_request_duration_seconds Request latency by method and route template.",
            "# TYPE allyapi_http_request_duration_seconds histogram",
        ]
        for (method, route), buckets in sorted(self.histograms.items()):
            labels = f'method="{method}",route="{route}"'
            cumulative = 0
            for bound, count in zip(BUCKETS, buckets, strict=False):
                cumulative += count
                lines.append(
                    f'allyapi_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}'
                )
            cumulative += buckets[-1]
            lines.append(
                f'allyapi_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {cumulative}'
            )
            lines.append(
                f"allyapi_http_request_duration_seconds_sum{{{labels}}} {self.sums[(method, route)]:.6f}"
            )
            lines.append(f"allyapi_http_request_duration_seconds_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The path template (``/v1/allies/{ally_id}``), never the raw path: ids stay out of labels."""
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


def matched_template(scope: Scope) -> str | None:
    """The full template of the route that handled the request.

    FastAPI includes routers lazily, so ``scope["route"].path`` lacks the include prefix
    (``/resources/{resource_id}`` for ``/v1/resources/…``). The prefix is what precedes the
    route's own path once its parameters are filled in; it holds no parameter, so no id.
    """
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    if route is None or not isinstance(path_format, str):
        return None
    params = dict(scope.get("path_params") or {})
    try:
        rendered, _ = replace_params(path_format, getattr(route, "param_convertors", {}), params)
    except (KeyError, TypeError, ValueError):
        return None
    path: str = scope["path"]
    if not path.endswith(rendered):
        return None
    return path[: len(path) - len(rendered)] + path_format


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, registry: Registry, root: ASGIApp) -> None:
        self.app = app
        self.registry = registry
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            template = matched_template(scope) or route_template(self.root, scope)
            self.registry.observe(scope["method"], template, status, time.perf_counter() - started)
