"""Unknown query parameters are a 422, like unknown body fields (docs/validation.md).

A misspelt filter (``?langauge=pt``) would otherwise be ignored and answer the unfiltered list,
which the client then takes for the filtered one. The allowed names are the operation's query
parameters as the published contract declares them (``app.openapi()``), so what the contract
says and what the app accepts cannot drift apart.

Installed as a router dependency after authentication (``app.py``), so an unauthenticated
caller still gets its 401 first.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from allyapi.core.http.errors import InvalidInput
from allyapi.core.metrics import matched_template

# A name is echoed back only when it looks like a parameter name; anything else could be
# arbitrary client data, which error bodies never repeat.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
_STATE_KEY = "query_parameters"


def _declared(app: FastAPI) -> dict[tuple[str, str], frozenset[str]]:
    table: dict[tuple[str, str], frozenset[str]] | None = getattr(app.state, _STATE_KEY, None)
    if table is None:
        table = {
            (path, method.upper()): frozenset(
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter.get("in") == "query"
            )
            for path, item in app.openapi().get("paths", {}).items()
            for method, operation in item.items()
        }
        setattr(app.state, _STATE_KEY, table)
    return table


async def known_query_only(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.scope.get("query_string"):
        return
    template = matched_template(request.scope)
    allowed = _declared(request.app).get((template or "", request.method), frozenset())
    unknown = set(request.query_params.keys()) - allowed
    if unknown:
        name = min(unknown)
        if _NAME.match(name):
            raise InvalidInput(f"unknown query parameter: {name}", loc=("query", name))
        raise InvalidInput("unknown query parameter", loc=("query",))
