"""Identity providers (docs/identity.md): RS256/ES256 from a JWKS URL or a static PEM,
several issuers at once next to the HS256 development issuer, per-issuer claim mapping,
JWKS caching and rate-limited refresh, key-source headers never followed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from allyapi.app import create_app
from allyapi.core.auth.jwks import MIN_REFRESH_INTERVAL, parse_jwks
from allyapi.core.auth.tokens import TokenVerifier
from allyapi.core.db.session import Database
from allyapi.core.settings import OidcIssuer, Settings
from tests.helpers import TokenFactory, assert_problem
from tests.oidc.idp import (
    JwksServer,
    mint,
    new_ec,
    new_rsa,
    public_jwk,
    public_pem,
    serving,
)

ROUTE = "/v1/resources"  # any employee read
ENTRA = "https://login.example/tenant-1/v2.0"
RSA_IDP = "https://idp.example/rsa"
EC_IDP = "https://idp.example/ec"
RSA_1, RSA_2, EC_KEY = new_rsa(), new_rsa(), new_ec()
GROUPS = {"all-staff": "employee", "ally-programme": "coordinator", "hr-analysts": "analyst"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.publish(public_jwk(RSA_1, "r1"), public_jwk(EC_KEY, "e1"))
    async with serving(server):
        yield server


def idp_settings(settings: Settings, jwks_url: str) -> Settings:
    return settings.model_copy(
        update={
            "jwt_orgs": ["acme", "globex"],
            "oidc_issuers": [
                OidcIssuer(
                    issuer=RSA_IDP, algorithms=["RS256", "ES256"], jwks_url=jwks_url, orgs=["acme"]
                ),
                OidcIssuer(
                    issuer=EC_IDP,
                    algorithms=["ES256"],
                    public_key=public_pem(EC_KEY),
                    orgs=["acme"],
                ),
                OidcIssuer(
                    issuer=ENTRA,
                    algorithms=["RS256"],
                    jwks_url=jwks_url,
                    audience="api://allyapi",
                    org_claim="tid",
                    roles_claim="groups",
                    role_map=GROUPS,
                    orgs=["acme"],
                ),
            ],
        }
    )


@pytest.fixture
async def idp_app(settings: Settings, database: Database, jwks: JwksServer) -> FastAPI:
    app = create_app(idp_settings(settings, jwks.url), database)
    app.state.verifier.issuers[RSA_IDP].jwks.clock = Clock()
    app.state.verifier.issuers[ENTRA].jwks.clock = Clock()
    return app


@pytest.fixture
async def idp_client(idp_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=idp_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rs256_from_jwks_es256_from_pem_and_the_dev_issuer_side_by_side(
    idp_client: httpx.AsyncClient, tokens: TokenFactory, jwks: JwksServer
) -> None:
    rsa_token = mint(RSA_1, RSA_IDP, kid="r1", org="acme", roles=["employee"])
    es_from_jwks = mint(EC_KEY, RSA_IDP, kid="e1", org="acme", roles=["employee"])
    pem_token = mint(EC_KEY, EC_IDP, org="acme", roles=["employee"])
    for token in (rsa_token, es_from_jwks, pem_token):
        response = await idp_client.get(ROUTE, headers=bearer(token))
        assert response.status_code == 200, response.text
    assert (await idp_client.get(ROUTE, headers=tokens.employee)).status_code == 200
    assert jwks.hits == 1  # fetched once, then served from the cache


async def test_claim_mapping_groups_to_roles_and_tenant_to_org(
    idp_app: FastAPI, idp_client: httpx.AsyncClient
) -> None:
    token = mint(
        RSA_1,
        ENTRA,
        kid="r1",
        audience="api://allyapi",
        tid="acme",
        groups=["all-staff", "ally-programme", "some-other-group"],
    )
    principal = await idp_app.state.verifier.verify_async(token)
    assert principal.org == "acme"
    assert principal.roles == frozenset({"employee", "coordinator"})
    created = await idp_client.post(
        ROUTE, json={"name": "EAP", "category": "professional"}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "claims",
    [
        {"tid": "acme", "groups": ["unmapped-only"]},  # no role left after mapping
        {"tid": "acme", "groups": []},
        {"tid": "acme", "groups": ["all-staff"] * 501},  # unbounded groups list
        {"org": "acme", "groups": ["all-staff"]},  # the org is in tid for this issuer
        {"tid": "acme", "roles": ["employee"]},  # roles come from groups for this issuer
    ],
)
async def test_mapped_issuer_refuses_tokens_without_a_mapped_role_or_tenant(
    idp_client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    token = mint(RSA_1, ENTRA, kid="r1", audience="api://allyapi", **claims)
    assert_problem(await idp_client.get(ROUTE, headers=bearer(token)), 401)


async def test_per_issuer_audience(idp_client: httpx.AsyncClient) -> None:
    wrong = mint(RSA_1, ENTRA, kid="r1", tid="acme", groups=["all-staff"])  # aud "allyapi"
    assert_problem(await idp_client.get(ROUTE, headers=bearer(wrong)), 401)


async def test_key_rotation_refreshes_on_an_unknown_kid_at_most_once_a_minute(
    idp_app: FastAPI, idp_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    clock: Clock = idp_app.state.verifier.issuers[RSA_IDP].jwks.clock
    old = mint(RSA_1, RSA_IDP, kid="r1", org="acme", roles=["employee"])
    assert (await idp_client.get(ROUTE, headers=bearer(old))).status_code == 200
    assert jwks.hits == 1

    # Within a minute of the first fetch an unknown kid fetches nothing; after it, a forged
    # kid costs one refresh, then no more within the next minute, whatever arrives.
    forged = mint(RSA_2, RSA_IDP, kid="nope", org="acme", roles=["employee"])
    assert_problem(await idp_client.get(ROUTE, headers=bearer(forged)), 401)
    assert jwks.hits == 1
    clock.now += MIN_REFRESH_INTERVAL
    forged = mint(RSA_2, RSA_IDP, kid="nope", org="acme", roles=["employee"])
    for _ in range(5):
        assert_problem(await idp_client.get(ROUTE, headers=bearer(forged)), 401)
    assert jwks.hits == 2

    # The IdP rotates to r2 within that minute: refused until the minute has passed...
    jwks.publish(public_jwk(RSA_2, "r2"))
    rotated = mint(RSA_2, RSA_IDP, kid="r2", org="acme", roles=["employee"])
    assert_problem(await idp_client.get(ROUTE, headers=bearer(rotated)), 401)
    assert jwks.hits == 2
    clock.now += MIN_REFRESH_INTERVAL
    # ...then the unknown kid triggers one refresh and the new key verifies.
    assert (await idp_client.get(ROUTE, headers=bearer(rotated))).status_code == 200
    assert jwks.hits == 3
    assert_problem(await idp_client.get(ROUTE, headers=bearer(old)), 401)  # r1 retired


async def test_concurrent_requests_share_one_fetch(
    idp_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    token = mint(RSA_1, RSA_IDP, kid="r1", org="acme", roles=["employee"])
    answers = await asyncio.gather(
        *(idp_client.get(ROUTE, headers=bearer(token)) for _ in range(10))
    )
    assert {answer.status_code for answer in answers} == {200}
    assert jwks.hits == 1


async def test_key_source_headers_are_never_followed(
    idp_client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    async with serving(JwksServer()) as attacker:
        attacker.publish(public_jwk(RSA_2, "evil"))
        for header in ("jku", "x5u"):
            token = mint(
                RSA_2,
                RSA_IDP,
                kid="evil",
                headers={header: attacker.url},
                org="acme",
                roles=["employee"],
            )
            assert_problem(await idp_client.get(ROUTE, headers=bearer(token)), 401)
        assert attacker.hits == 0
    assert jwks.hits == 0  # refused before any key lookup


async def test_algorithm_confusion_with_a_jwks_key_is_refused(
    idp_client: httpx.AsyncClient,
) -> None:
    """An HS256 token 'signed' with the RSA public key, and an RSA key used for ES256."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "r1"}
    claims = {"iss": RSA_IDP, "aud": "allyapi", "sub": "x", "org": "acme", "roles": ["employee"]}
    claims |= {"iat": int(time.time()), "exp": int(time.time()) + 600}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem(RSA_1).encode(), signing_input.encode(), hashlib.sha256).digest()
    hs = f"{signing_input}.{b64url(mac)}"
    assert_problem(await idp_client.get(ROUTE, headers=bearer(hs)), 401)
    wrong_kid = mint(EC_KEY, RSA_IDP, kid="r1", org="acme", roles=["employee"])
    assert_problem(await idp_client.get(ROUTE, headers=bearer(wrong_kid)), 401)


async def test_an_unreachable_jwks_is_a_401_not_a_500(
    settings: Settings, database: Database, jwks: JwksServer
) -> None:
    jwks.status = 503
    verifier = TokenVerifier(idp_settings(settings, jwks.url))
    token = mint(RSA_1, RSA_IDP, kid="r1", org="acme", roles=["employee"])
    with pytest.raises(Exception, match="invalid token"):
        await verifier.verify_async(token)
    jwks.status = 200
    verifier.issuers[RSA_IDP].jwks.attempted_at = None  # as if a minute had passed
    assert (await verifier.verify_async(token)).org == "acme"
    # A failed refresh later keeps the keys already known.
    jwks.status = 500
    await verifier.issuers[RSA_IDP].jwks.refresh()
    assert verifier.verify(token).org == "acme"


def test_jwks_parsing_keeps_public_signing_keys_only() -> None:
    good = public_jwk(RSA_1, "r1")
    document = {
        "keys": [
            good,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {**public_jwk(RSA_2, "enc"), "use": "enc"},
            {**public_jwk(RSA_2, "priv"), "d": "AAAA"},
            {**public_jwk(EC_KEY, "mislabelled"), "alg": "RS256"},
            "not a key",
        ]
    }
    assert list(parse_jwks(json.loads(json.dumps(document)))) == ["r1"]
    with pytest.raises(ValueError, match="JWKS"):
        parse_jwks({"nokeys": []})


@pytest.mark.parametrize(
    "config",
    [
        {"issuer": "x", "algorithms": ["RS256"]},  # no key source
        {"issuer": "x", "algorithms": ["RS256"], "jwks_url": "https://a/j", "public_key": "k"},
        {"issuer": "x", "algorithms": ["RS256"], "jwks_url": "http://idp.example/jwks"},
        {"issuer": "x", "algorithms": ["HS256"], "public_key": "k"},
        {"issuer": "x", "algorithms": ["RS256"], "public_key": "k", "role_map": {"g": "admin"}},
        {"issuer": "x", "algorithms": ["RS256"], "public_key": "k", "jku_allowed": True},
    ],
)
def test_issuer_configuration_is_validated(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError
        OidcIssuer.model_validate(config)


def test_issuers_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    value = [
        {
            "issuer": ENTRA,
            "algorithms": ["RS256"],
            "jwks_url": "https://login.example/keys",
            "org_claim": "tid",
            "roles_claim": "groups",
            "role_map": GROUPS,
            "orgs": ["acme"],
        },
        {
            "issuer": EC_IDP,
            "algorithms": ["ES256"],
            "public_key": public_pem(EC_KEY),
            "orgs": ["acme", "globex"],
        },
    ]
    monkeypatch.setenv("ALLYAPI_OIDC_ISSUERS", json.dumps(value))
    monkeypatch.setenv("ALLYAPI_JWT_ORGS", "demo, acme")
    loaded = Settings(jwt_secret="x" * 40)
    assert [issuer.issuer for issuer in loaded.oidc_issuers] == [ENTRA, EC_IDP]
    assert loaded.oidc_issuers[0].role_map == GROUPS
    assert loaded.issuer_orgs() == {
        "allyapi-dev": frozenset({"demo", "acme"}),
        ENTRA: frozenset({"acme"}),
        EC_IDP: frozenset({"acme", "globex"}),
    }
