"""Route-level dependencies: who is calling and which role they act in.

Aliases read like sentences on a route (``caller: CoordinatorOnly``). Ownership rules ("the
ally concerned", "the requester") live in each domain's ``deps.py`` on top of these.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from allyapi.core.auth.tokens import Principal, TokenVerifier
from allyapi.core.http.errors import Forbidden, Unauthorized
from allyapi.core.settings import Settings

bearer = HTTPBearer(auto_error=False, description="A JWT from a configured issuer")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify_async(credentials.credentials)
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(current_principal)]


# ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool (a thread hop per
# request for a getter; measured on the hot paths, bench/RESULTS.md).
async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


async def pseudonym_key(request: Request) -> bytes:
    key: bytes = request.app.state.settings.pseudonym_key_bytes
    return key


PseudonymKey = Annotated[bytes, Depends(pseudonym_key)]


def require_roles(*roles: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(principal: Caller) -> Principal:
        if not principal.has(*roles):
            raise Forbidden("this operation needs the role: " + " or ".join(roles))
        return principal

    dependency.__name__ = "require_" + "_or_".join(roles)
    return dependency


EmployeeOnly = Annotated[Principal, Depends(require_roles("employee"))]
CoordinatorOnly = Annotated[Principal, Depends(require_roles("coordinator"))]
EmployeeOrCoordinator = Annotated[Principal, Depends(require_roles("employee", "coordinator"))]
IntegrationOnly = Annotated[Principal, Depends(require_roles("integration"))]
IntegrationOrCoordinator = Annotated[
    Principal, Depends(require_roles("integration", "coordinator"))
]
CoordinatorOrAnalyst = Annotated[Principal, Depends(require_roles("coordinator", "analyst"))]
EmployeeCoordinatorOrAnalyst = Annotated[
    Principal, Depends(require_roles("employee", "coordinator", "analyst"))
]
