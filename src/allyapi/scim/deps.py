"""Who may provision and the SCIM service, as route dependencies (the ``integration`` role
only; docs/scim.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from allyapi.audit.trail import Audit
from allyapi.core.auth.security import AppSettings, IntegrationOnly, PseudonymKey
from allyapi.core.auth.tokens import TokenVerifier
from allyapi.core.db.session import Session
from allyapi.scim.service import Provisioner, ScimService


async def a_provisioner(caller: IntegrationOnly, request: Request) -> Provisioner:
    verifier: TokenVerifier = request.app.state.verifier
    return Provisioner(caller.org, tuple(verifier.pseudonym_issuers(caller.org)))


Provisioning = Annotated[Provisioner, Depends(a_provisioner)]


async def scim_service(
    session: Session, settings: AppSettings, key: PseudonymKey, audit: Audit
) -> ScimService:
    return ScimService(session, settings, key, audit)


Scim = Annotated[ScimService, Depends(scim_service)]
