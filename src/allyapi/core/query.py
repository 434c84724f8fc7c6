"""Unknown query parameters are a 422, as unknown body fields are (docs/validation.md).

A misspelt filter (``?langauge=pt``) would otherwise be ignored silently and answer a list
the client did not ask for. Every route under /v1 gets this as a router dependency, after
authentication: the names a route accepts are read once from its own declaration (FastAPI's
dependant tree, aliases included), so a new parameter needs nothing here.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from allyapi.core.errors import InvalidInput
from allyapi.core.security import Caller

_ACCEPTED: dict[int, frozenset[str]] = {}


def _names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return names


def accepted_query_parameters(route: APIRoute) -> frozenset[str]:
    accepted = _ACCEPTED.get(id(route))
    if accepted is None:
        accepted = _ACCEPTED[id(route)] = frozenset(_names(route.dependant))
    return accepted


async def reject_unknown_query_parameters(request: Request, _: Caller) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    accepted = accepted_query_parameters(route)
    for name in request.query_params:
        if name not in accepted:
            raise InvalidInput(
                "unknown query parameter (see the operation's parameters)",
                loc=("query", name[:100].replace("\x00", "\ufffd")),
            )
