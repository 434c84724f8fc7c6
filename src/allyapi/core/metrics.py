"""Prometheus metrics through ``prometheus_client``, summed over every worker process.

``allyapi serve --workers N`` runs N processes behind one port, and a scrape reaches one of
them at random: per-process counters would jump back and forth. So the server runs
``prometheus_client`` in its multiprocess mode: ``serve`` gives the workers a fresh
``PROMETHEUS_MULTIPROC_DIR`` (cli.py), each worker writes its values to its own files there,
and a scrape, whichever worker answers it, reads and sums all of them (dead workers' counters
included, so totals never go down). A single process (tests, ``--workers 1`` before the
directory existed) keeps its values in memory and renders them directly.

Labels are the route *template* (``/v1/resources/{resource_id}``) and the status, never the
raw path: no id reaches a label, and the number of series is bounded by the routes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from starlette.routing import Match, replace_params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the same name cli.py sets
CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Files of live gauges are per process id; the library drops a dead process's ones.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")

# ``*_created`` series (one per label set) double the output and exist in one mode only.
disable_created_metrics()  # type: ignore[no-untyped-call]
# Registered in a registry of our own (not the library's global default one), which is what a
# single process renders; in multiprocess mode each scrape builds a collector over the files.
REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "allyapi_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "allyapi_http_request_duration_seconds",
    "Request latency by method and route template.",
    ["method", "route"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "allyapi_http_requests_in_flight",
    "Requests being served now, over the live worker processes.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> Path | None:
    """The directory this process writes its values to, or None (values in memory).

    ``prometheus_client`` picks its mode once, when it is first imported, from the
    environment; asking the chosen value class is the only answer that cannot disagree."""
    if values.ValueClass is values.MutexValue:
        return None
    return Path(os.environ[MULTIPROC_ENV])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def forget_dead_workers(directory: Path) -> None:
    """What the library asks of a multiprocess server when a worker exits: its live gauges go
    (a dead worker serves nothing), its counters and histograms stay (totals never drop).
    uvicorn's supervisor offers no exit hook, so this runs before each scrape."""
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]


def render() -> bytes:
    """The Prometheus text exposition of every live and past worker of this server."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    forget_dead_workers(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


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
    def __init__(self, app: ASGIApp, root: ASGIApp) -> None:
        self.app = app
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

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, capture)
        finally:
            IN_FLIGHT.dec()
            template = matched_template(scope) or route_template(self.root, scope)
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            DURATION.labels(method, template).observe(time.perf_counter() - started)
