"""SCIM provisioning rules (docs/scim.md).

- A SCIM User is a person who holds an ally profile; its id is the ally's id. Profiles are
  volunteered, never made by SCIM: ``POST /Users`` *links* the profile of the person named by
  ``userName`` (their ``sub`` at an issuer of the org) and is a 404, storing nothing, when
  that person has no profile. A filter that finds a person links them the same way, since
  identity providers look a user up before they decide to create one.
- ``active: false`` (PATCH or PUT) and ``DELETE`` retire the profile exactly as a roster sync
  retires a leaver (``AllyAvailability.retire_leavers``, workflows/ally_availability.py: pending requests handed back, unlisting
  announced). DELETE also removes the link, so the user is gone for SCIM (404 afterwards).
  Retirement is final: ``active: true`` on a retired profile is a 400 ``mutability``.
- ``userName`` is immutable (it *is* the link); ``displayName`` is the ally's own, read-only
  here. Attributes outside the minimal User are ignored (identity providers send their whole
  user), so a PUT from Okta or a PATCH from Entra ID with its other mappings still applies.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.allies.models import Ally, AllyStatus
from allyapi.allies.service import AllyService
from allyapi.audit.schemas import AuditAction, AuditTarget
from allyapi.audit.trail import AuditTrail
from allyapi.core.auth.pseudonym import Subject, subject_ref
from allyapi.core.db.models import utcnow
from allyapi.core.http.errors import NotFound
from allyapi.core.privacy.crypto import Cipher, aad_for
from allyapi.core.settings import Settings
from allyapi.scim.documents import MAX_USER_NAME, USER_SCHEMA, user_document
from allyapi.scim.errors import InvalidPath, MutabilityError, ScimProblem, Uniqueness
from allyapi.scim.models import AllyAccount
from allyapi.scim.repository import AccountRepository, AccountRow
from allyapi.workflows.ally_availability import AllyAvailability

MAX_EXTERNAL_ID = 255
MAX_OPERATIONS = 20


@dataclass(frozen=True)
class Provisioner:
    """An integration client provisioning its org: the org and the issuers of its people."""

    org: str
    issuers: tuple[str | None, ...]


@dataclass(frozen=True)
class Shape:
    """Which attributes to answer (``attributes`` / ``excludedAttributes``)."""

    attributes: list[str] | None = None
    excluded: list[str] | None = None


@dataclass
class Changes:
    """What a PUT, PATCH or POST asks for, after validation."""

    external_id: str | None = None
    external_id_set: bool = False
    active: bool | None = None


def _text(value: Any, name: str, limit: int) -> str:
    """The contract's rule for userName and externalId (scim/openapi.py): 1 to ``limit``
    characters, none of them a control character."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ScimProblem(f"{name} must be a non-empty string of at most {limit} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ScimProblem(f"{name} may not hold control characters")
    return value


def _boolean(value: Any) -> bool:
    """``active`` as a boolean; Entra ID sends the strings "True" and "False"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimProblem("active must be a boolean")


def _attribute(name: str) -> str:
    """An attribute name, case-insensitively, without the User schema's URN prefix."""
    if name.lower().startswith(USER_SCHEMA.lower() + ":"):
        name = name[len(USER_SCHEMA) + 1 :]
    return name.lower()


def user_name_of(body: dict[str, Any]) -> str:
    for key, value in body.items():
        if _attribute(key) == "username":
            return _text(value, "userName", MAX_USER_NAME)
    raise ScimProblem("userName is required")


def changes_of(body: dict[str, Any]) -> Changes:
    """The writable attributes of a User document; the rest is ignored (see the module)."""
    changes = Changes()
    for key, value in body.items():
        name = _attribute(key)
        if name == "active" and value is not None:
            changes.active = _boolean(value)
        elif name == "externalid":
            changes.external_id_set = True
            changes.external_id = (
                None if value is None else _text(value, "externalId", MAX_EXTERNAL_ID)
            )
    return changes


def patch_changes(operations: Sequence[dict[str, Any]], user_name: str) -> Changes:
    """RFC 7644 §3.5.2 for the writable attributes: ``add``/``replace`` with a path or with a
    value object, ``remove`` of ``externalId``. Entra ID capitalises ``op``."""
    if not operations or len(operations) > MAX_OPERATIONS:
        raise ScimProblem(f"Operations must hold 1 to {MAX_OPERATIONS} operations")
    changes = Changes()
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimProblem("each operation must be an object")
        op = str(operation.get("op", "")).lower()
        path, value = operation.get("path"), operation.get("value")
        if op not in ("add", "replace", "remove"):
            raise ScimProblem('op must be "add", "replace" or "remove"')
        if path is not None and not isinstance(path, str):
            raise InvalidPath("path must be a string")
        if path is None:
            if op == "remove" or not isinstance(value, dict):
                raise InvalidPath("an operation without a path needs an object value")
            found = changes_of(value)
            _keep_user_name(value, user_name)
        else:
            found = _path_change(op, _attribute(path), value, user_name)
        if found.active is not None:
            changes.active = found.active
        if found.external_id_set:
            changes.external_id_set, changes.external_id = True, found.external_id
    return changes


def _path_change(op: str, name: str, value: Any, user_name: str) -> Changes:
    if name == "active":
        if op == "remove":
            raise MutabilityError("active cannot be removed: set it to false")
        return Changes(active=_boolean(value))
    if name == "externalid":
        if op == "remove":
            return Changes(external_id_set=True)
        return changes_of({"externalId": value})
    if name == "username":
        _keep_user_name({"userName": value}, user_name)
    return Changes()  # read-only or outside the minimal User: ignored


def _keep_user_name(body: dict[str, Any], user_name: str) -> None:
    for key, value in body.items():
        if _attribute(key) == "username" and value != user_name:
            raise MutabilityError("userName is immutable: it links the ally profile")


class ScimService:
    def __init__(
        self, session: AsyncSession, settings: Settings, key: bytes, audit: AuditTrail
    ) -> None:
        self.session = session
        self.audit = audit
        self.repo = AccountRepository(session)
        self.allies = AllyService(session)
        self.availability = AllyAvailability(self.allies, session, settings)
        self.cipher = Cipher(settings.data_key_ring)
        self.key = key

    # -- reading ------------------------------------------------------------------------

    def document(self, row: AccountRow, shape: Shape = Shape()) -> dict[str, Any]:
        account, ally = row
        return user_document(
            ally.id,
            user_name=self.cipher.open(account.user_name_sealed, _aad(ally.id, "user_name")),
            external_id=self.cipher.open_optional(
                account.external_id_sealed, _aad(ally.id, "external_id")
            ),
            display_name=ally.display_name,
            active=ally.status != AllyStatus.retired,
            created=account.created_at,
            modified=max(account.updated_at, ally.updated_at),
            version=account.version,
            attributes=shape.attributes,
            excluded=shape.excluded,
        )

    async def get(
        self, who: Provisioner, user_id: uuid.UUID, *, for_update: bool = False
    ) -> AccountRow:
        row = await self.repo.get(who.org, user_id, for_update=for_update)
        if row is None:
            raise NotFound("no such user")
        return row

    async def page(
        self, who: Provisioner, *, start_index: int, count: int
    ) -> tuple[int, list[AccountRow]]:
        total = await self.repo.count(who.org)
        rows = await self.repo.page(who.org, offset=start_index - 1, limit=count)
        return total, list(rows)

    async def find(self, who: Provisioner, user_name: str) -> AccountRow | None:
        """The user named ``userName``, linked now if their profile was not yet; None (and
        nothing stored) when nobody of the org with that ``sub`` holds an ally profile."""
        try:
            ally = await self._ally_named(who, user_name)
        except ScimProblem:  # a userName nobody can have: nobody found
            return None
        if ally is None:
            return None
        await self.repo.link(self._account(ally, user_name, None))
        return await self.get(who, ally.id)

    # -- writing ------------------------------------------------------------------------

    async def link(self, who: Provisioner, body: dict[str, Any]) -> AccountRow:
        user_name = user_name_of(body)
        changes = changes_of(body)
        ally = await self._ally_named(who, user_name)
        if ally is None:
            raise NotFound(
                "nobody with this userName holds an ally profile: SCIM links profiles, "
                "people create them by volunteering"
            )
        if not await self.repo.link(self._account(ally, user_name, changes.external_id)):
            raise Uniqueness("this user is already provisioned")
        row = await self.get(who, ally.id, for_update=True)
        return await self._apply(who, row, changes, touched=False)

    async def replace(
        self, who: Provisioner, user_id: uuid.UUID, body: dict[str, Any]
    ) -> AccountRow:
        row = await self.get(who, user_id, for_update=True)
        if user_name_of(body) != self._user_name(row):
            raise MutabilityError("userName is immutable: it links the ally profile")
        changes = changes_of(body)
        changes.external_id_set = True  # a PUT replaces: an absent externalId is cleared
        return await self._apply(who, row, changes)

    async def patch(
        self, who: Provisioner, user_id: uuid.UUID, operations: Sequence[dict[str, Any]]
    ) -> AccountRow:
        row = await self.get(who, user_id, for_update=True)
        changes = patch_changes(operations, self._user_name(row))
        return await self._apply(who, row, changes)

    async def delete(self, who: Provisioner, user_id: uuid.UUID) -> None:
        account, ally = await self.get(who, user_id, for_update=True)
        if ally.status != AllyStatus.retired:
            await self._retire(who, ally.id)
        await self.repo.delete(who.org, account.id)

    # -- helpers ------------------------------------------------------------------------

    async def _apply(
        self, who: Provisioner, row: AccountRow, changes: Changes, *, touched: bool = True
    ) -> AccountRow:
        account, ally = row
        if changes.external_id_set:
            account.external_id_sealed = self.cipher.seal_optional(
                changes.external_id, _aad(ally.id, "external_id")
            )
        if touched:
            account.version += 1
            account.updated_at = utcnow()
        await self.session.flush()
        if changes.active is False and ally.status != AllyStatus.retired:
            await self._retire(who, ally.id)
        elif changes.active is True and ally.status == AllyStatus.retired:
            await self.allies.reapply(who.org, ally.id)
            await self.audit.record(
                AuditAction.ally_scim_reapply, AuditTarget.ally, ally.id, ["status"]
            )
        return await self._reread(who, ally.id)

    async def _retire(self, who: Provisioner, ally_id: uuid.UUID) -> None:
        """A leaver as roster sync retires one, recorded in the programme's audit trail."""
        await self.availability.retire_leavers(who.org, [ally_id])
        await self.audit.record(AuditAction.ally_scim_retire, AuditTarget.ally, ally_id, ["status"])

    async def _reread(self, who: Provisioner, ally_id: uuid.UUID) -> AccountRow:
        # retire_many updates with synchronize_session off: read the row as it is now.
        self.session.expire_all()
        return await self.get(who, ally_id)

    def _user_name(self, row: AccountRow) -> str:
        return self.cipher.open(row[0].user_name_sealed, _aad(row[1].id, "user_name"))

    async def _ally_named(self, who: Provisioner, user_name: str) -> Ally | None:
        user_name = _text(user_name, "userName", MAX_USER_NAME)
        refs = [
            subject_ref(self.key, "ally", Subject(who.org, user_name, issuer))
            for issuer in who.issuers
        ]
        return await self.repo.ally_by_refs(who.org, refs)

    def _account(self, ally: Ally, user_name: str, external_id: str | None) -> AllyAccount:
        now = utcnow()
        return AllyAccount(
            id=ally.id,
            org_id=ally.org_id,
            user_name_sealed=self.cipher.seal(user_name, _aad(ally.id, "user_name")),
            external_id_sealed=self.cipher.seal_optional(external_id, _aad(ally.id, "external_id")),
            version=1,
            created_at=now,
            updated_at=now,
        )


def _aad(ally_id: uuid.UUID, field: str) -> str:
    return aad_for("ally_accounts", ally_id, field)
