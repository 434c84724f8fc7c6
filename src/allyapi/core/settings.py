"""All configuration in one pydantic-settings class (README.md, "Configuration").

Development runs with no configuration at all: missing secrets are generated once into
``secrets.json`` (mode 0600) in the secrets directory and reused. That directory is apart
from the data directory (``ALLYAPI_SECRETS_DIR``, default ``~/.config/allyapi``): a copy of
the data folder (the database) without the keys reveals nothing. A ``secrets.json`` left in
the data directory by an older version is still used, so its data stays readable, and the
server warns loudly at every start until it is moved (docs/request-lifecycle.md).
``ALLYAPI_ENV=production`` refuses to start unless every secret is given explicitly, so a
generated key can never guard real data.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from allyapi.core.db.models import ORG_ID_MAX

DEV_SECRETS_FILE = "secrets.json"
DEV_SECRETS = ("jwt_secret", "pseudonym_key", "data_keys")
K_MAX = 10_000  # a k-anonymity threshold above this would suppress every real figure
MAX_ORGS_PER_ISSUER = 10_000
DAY_SECONDS = 86_400


def printable(value: object, max_chars: int) -> bool:
    """1..max_chars printable characters: no NUL, no control or separator characters other
    than the plain space. What a stored or hashed identifier may hold (PostgreSQL text cannot
    hold NUL; a newline in an org id would forge log lines)."""
    return isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable()


def _org_id(value: str) -> str:
    if not printable(value, ORG_ID_MAX):
        raise ValueError(f"an org id is 1-{ORG_ID_MAX} printable characters")
    return value


def _issuer_name(value: str) -> str:
    if not printable(value, 500):
        raise ValueError("an issuer is 1-500 printable characters")
    return value


OrgId = Annotated[str, AfterValidator(_org_id)]
IssuerName = Annotated[str, AfterValidator(_issuer_name)]


class OidcIssuer(BaseModel):
    """An identity provider: tokens are verified with its keys and its algorithms only.

    Keys come from ``jwks_url`` (https; http only to a loopback host, for tests and local
    IdPs) or a static PEM ``public_key``, exactly one. Claim mapping: ``org_claim`` names the
    tenant claim (e.g. Entra ID's ``tid``), ``roles_claim`` the claim listing the caller's
    roles or groups (e.g. ``groups``); with ``role_map`` those names are translated to our roles
    and unmapped ones ignored, without it they must be our role names. ``audience`` overrides
    ALLYAPI_JWT_AUDIENCE for this issuer (an IdP's audience is often an app id). ``orgs``:
    the org ids this issuer may speak for (a token claiming another is refused); required as
    soon as more than one issuer is configured (docs/identity.md).
    """

    model_config = ConfigDict(extra="forbid")

    issuer: IssuerName
    algorithms: list[Literal["RS256", "ES256"]] = Field(min_length=1)
    jwks_url: str | None = Field(default=None, max_length=2000)
    public_key: str | None = None
    audience: str | None = Field(default=None, min_length=1, max_length=500)
    org_claim: str = Field(default="org", min_length=1, max_length=100)
    roles_claim: str = Field(default="roles", min_length=1, max_length=100)
    role_map: dict[str, Literal["employee", "coordinator", "analyst", "integration"]] | None = (
        Field(default=None, max_length=1000)
    )
    orgs: list[OrgId] | None = Field(default=None, min_length=1, max_length=MAX_ORGS_PER_ISSUER)

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcIssuer:
        if (self.jwks_url is None) == (self.public_key is None):
            raise ValueError(f"issuer {self.issuer}: give exactly one of jwks_url, public_key")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            loopback = parts.hostname in {"127.0.0.1", "::1", "localhost"}
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError(f"issuer {self.issuer}: jwks_url must use https")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALLYAPI_", env_file=".env", extra="ignore", frozen=False
    )

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path(".allyapi")
    # Where generated development secrets live; None: $XDG_CONFIG_HOME/allyapi or
    # ~/.config/allyapi. Never the data directory (a copy of it must not carry the keys).
    secrets_dir: Path | None = None
    database_url: str | None = None

    jwt_issuer: IssuerName = "allyapi-dev"
    jwt_secret: str | None = None
    jwt_audience: str = "allyapi"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=60)
    # The orgs the HS256 issuer may speak for: a JSON list or comma-separated. None = any org,
    # allowed in development with that issuer alone (docs/identity.md).
    jwt_orgs: Annotated[list[OrgId] | None, NoDecode] = Field(
        default=None, min_length=1, max_length=MAX_ORGS_PER_ISSUER
    )
    # The longest ``exp - iat`` a token may span, whatever its issuer.
    jwt_max_lifetime_seconds: int = Field(default=DAY_SECONDS, ge=60, le=30 * DAY_SECONDS)
    oidc_issuers: list[OidcIssuer] = Field(default_factory=list)
    # The issuer whose pseudonyms keep the form they had before pseudonyms included the
    # issuer (an upgraded install's people keep their history). None: the HS256 issuer when
    # there is one, else the first of ALLYAPI_OIDC_ISSUERS; "" : none (docs/identity.md).
    legacy_pseudonym_issuer: str | None = None

    pseudonym_key: str | None = None
    data_keys: str | None = None

    k_anonymity: int = Field(default=5, ge=3, le=K_MAX)
    k_comments: int = Field(default=10, ge=3, le=K_MAX)
    retention_days: int = Field(default=30, ge=1)
    # How long the programme's audit trail keeps an event (the purge job deletes older ones).
    audit_retention_days: int = Field(default=365, ge=1, le=36_500)
    response_window_hours: int = Field(default=72, ge=1)
    max_open_requests: int = Field(default=3, ge=1)
    # Expiry, retention purge and idempotency-key cleanup inside every server process, every N
    # seconds (jittered); 0 disables them (then run `allyapi purge` from a scheduler).
    jobs_interval_seconds: float = Field(default=60, ge=0, le=86_400)
    webhook_allow_private: bool | None = None
    # Webhook deliverer poll interval in every server process (jittered); 0 disables it.
    webhook_interval_seconds: float = Field(default=2, ge=0, le=3600)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # None = the default for the environment: on in development/test, off in production
    # (the contract is published as openapi/openapi.json; a production API need not serve it).
    docs_enabled: bool | None = None
    # Browser origins allowed to call the API (CORS). Empty = closed: no CORS headers at all.
    # ALLYAPI_CORS_ORIGINS takes a JSON list or a comma-separated list of exact origins.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Writes (POST/PATCH/DELETE under /v1) per caller per minute, shared by all processes.
    rate_limit_writes_per_minute: int = Field(default=120, ge=1, le=100_000)
    # Reads (GET under /v1) per caller per minute, shared by all processes: polling a read is
    # how a side channel is watched and a directory scraped (docs/operations.md).
    rate_limit_reads_per_minute: int = Field(default=300, ge=1, le=100_000)
    # How often the suggestions' snapshot of each ally's load band is taken (allies/ranking.py):
    # a request to an ally shows in the suggestions' order only at the next snapshot.
    suggestion_refresh_minutes: int = Field(default=60, ge=1, le=1440)
    db_pool_size: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    # The bearer token /metrics requires (compared in constant time). Unset: /metrics is open,
    # which production refuses (its counters tick with every request, so they are not public).
    metrics_token: str | None = Field(default=None, min_length=32, max_length=512)

    # The generated-secrets file this configuration read, when it read one.
    _dev_secrets_file: Path | None = PrivateAttr(default=None)

    @field_validator("cors_origins", "jwt_orgs", mode="before")
    @classmethod
    def _json_or_comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and (
                not origin.startswith(("https://", "http://")) or origin.endswith("/")
            ):
                raise ValueError(f"CORS origin must be scheme://host[:port]: {origin!r}")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < 32:
            raise ValueError("ALLYAPI_JWT_SECRET must be at least 32 bytes")
        return value

    @model_validator(mode="after")
    def _production_needs_explicit_secrets(self) -> Settings:
        if self.env != "production":
            return self
        missing = [
            name
            for name, value in (
                (
                    "ALLYAPI_JWT_SECRET or ALLYAPI_OIDC_ISSUERS",
                    self.jwt_secret or self.oidc_issuers,
                ),
                ("ALLYAPI_PSEUDONYM_KEY", self.pseudonym_key),
                ("ALLYAPI_DATA_KEYS", self.data_keys),
                ("ALLYAPI_DATABASE_URL", self.database_url),
                ("ALLYAPI_METRICS_TOKEN", self.metrics_token),
            )
            if not value
        ]
        if self.jwt_secret and self.jwt_orgs is None:
            missing.append("ALLYAPI_JWT_ORGS (the orgs the HS256 issuer may speak for)")
        if missing:
            raise ValueError("production refuses to start without " + ", ".join(missing))
        return self

    @model_validator(mode="after")
    def _issuers_are_bound(self) -> Settings:
        check_issuers(self)
        return self

    @property
    def has_dev_issuer(self) -> bool:
        """The HS256 issuer exists: its secret is given, or (outside production) generated."""
        return self.jwt_secret is not None or self.env != "production"

    def issuer_orgs(self) -> dict[str, frozenset[str] | None]:
        """Every configured issuer → the orgs it may speak for (None: any org)."""
        issuers: dict[str, frozenset[str] | None] = {}
        if self.has_dev_issuer:
            issuers[self.jwt_issuer] = frozenset(self.jwt_orgs) if self.jwt_orgs else None
        for oidc in self.oidc_issuers:
            issuers[oidc.issuer] = frozenset(oidc.orgs) if oidc.orgs else None
        return issuers

    @property
    def legacy_issuer(self) -> str | None:
        """The issuer whose pseudonyms keep their pre-binding form (docs/identity.md)."""
        if self.legacy_pseudonym_issuer is not None:
            return self.legacy_pseudonym_issuer or None
        if self.has_dev_issuer:
            return self.jwt_issuer
        return self.oidc_issuers[0].issuer if self.oidc_issuers else None

    def with_dev_secrets(self) -> Settings:
        """Fill missing secrets from (or into) the secrets file. Never used in production;
        no file is read or written when every secret is given."""
        missing = [name for name in DEV_SECRETS if getattr(self, name) is None]
        if self.env == "production" or not missing:
            return self
        path = self.data_dir / DEV_SECRETS_FILE  # where older versions kept them
        if not path.exists():
            path = (self.secrets_dir or default_secrets_dir()) / DEV_SECRETS_FILE
        stored = _load_or_create_dev_secrets(path)
        copy = self.model_copy(update={name: stored[name] for name in missing})
        copy._dev_secrets_file = path
        return copy

    @property
    def secrets_beside_database(self) -> Path | None:
        """The generated-secrets file, when it lies inside the data directory: a copy of
        that folder would then hold the database and every key that opens it."""
        path = self._dev_secrets_file
        if path is None or not path.resolve().is_relative_to(self.data_dir.resolve()):
            return None
        return path

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'allyapi.db'}"

    @property
    def expose_docs(self) -> bool:
        """``/docs`` and ``/openapi.json``: ALLYAPI_DOCS_ENABLED, else off in production only."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.env != "production"

    @property
    def allow_private_webhooks(self) -> bool:
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return self.env != "production"

    @cached_property
    def pseudonym_key_bytes(self) -> bytes:
        if not self.pseudonym_key:
            raise RuntimeError("pseudonym key is not configured")
        return self.pseudonym_key.encode()

    @cached_property
    def cursor_key(self) -> bytes:
        """Signs pagination cursors: derived from the pseudonym key under its own label, so
        a cursor's MAC never equals a pseudonym (core/http/pagination.py)."""
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"allyapi/cursor/v1"
        ).derive(self.pseudonym_key_bytes)

    @cached_property
    def data_key_ring(self) -> list[tuple[str, bytes]]:
        """``id:base64key,...`` parsed; the first key writes, all of them read."""
        if not self.data_keys:
            raise RuntimeError("data keys are not configured")
        ring: list[tuple[str, bytes]] = []
        for part in self.data_keys.split(","):
            key_id, _, encoded = part.strip().partition(":")
            key = base64.b64decode(encoded)
            if not key_id or len(key) != 32:
                raise ValueError("each data key must be 'id:base64' of 32 bytes")
            ring.append((key_id, key))
        return ring


def check_issuers(settings: Settings) -> None:
    """Refuses an issuer configuration that would let one issuer speak for another's people.

    - one name, one issuer (a shared name would apply one issuer's keys to the other's tokens);
    - with more than one issuer, every issuer lists its ``orgs``, so none speaks for all;
    - the legacy pseudonym issuer, when named, is one of them.
    Raised as ValueError: a configuration error at start (exit 2 from the CLI).
    """
    names = [oidc.issuer for oidc in settings.oidc_issuers]
    if settings.has_dev_issuer:
        names.insert(0, settings.jwt_issuer)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"issuer configured twice: {', '.join(repeated)}")
    unbound = [name for name, orgs in settings.issuer_orgs().items() if orgs is None]
    if len(names) > 1 and unbound:
        which = ", ".join(
            "the HS256 issuer (set ALLYAPI_JWT_ORGS)" if name == settings.jwt_issuer else name
            for name in unbound
        )
        raise ValueError(
            f"{len(names)} issuers are configured, so each must list the orgs it may speak "
            f"for; without orgs: {which}"
        )
    legacy = settings.legacy_pseudonym_issuer
    if legacy and legacy not in names:
        raise ValueError("ALLYAPI_LEGACY_PSEUDONYM_ISSUER names no configured issuer")


def secrets_warning(settings: Settings) -> str | None:
    """What to say, loudly, when generated secrets sit inside the data directory."""
    path = settings.secrets_beside_database
    if path is None:
        return None
    return (
        f"DEVELOPMENT SECRETS ARE STORED INSIDE THE DATA DIRECTORY ({path}): a copy of that "
        "folder holds the database and every key that opens it. Move the file to "
        f"{(settings.secrets_dir or default_secrets_dir()) / DEV_SECRETS_FILE} (or set "
        "ALLYAPI_SECRETS_DIR to a directory outside the data directory)."
    )


def default_secrets_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config) if config else Path.home() / ".config") / "allyapi"


def _load_or_create_dev_secrets(path: Path) -> dict[str, str]:
    """Read the secrets file, or create it with fresh secrets.

    Created atomically: written to a private temporary file, then hard-linked into place,
    which fails if another process got there first (whose file is then read). Two server
    processes starting at once once read a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        generated = {
            "jwt_secret": secrets.token_urlsafe(48),
            "pseudonym_key": secrets.token_urlsafe(48),
            # A key id of its own per file: a database opened with other secrets answers
            # "unknown key" (503) rather than failing to decrypt.
            "data_keys": f"dev-{secrets.token_hex(4)}:"
            + base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets-")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp: mode 0600
                json.dump(generated, handle)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides).with_dev_secrets()
