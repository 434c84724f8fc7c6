"""Token attacks (SECURITY.md): every forged, stale or malformed token answers 401.

Each case goes through the real app against ``GET /v1/resources``. A second app instance
trusts two identity providers with static public keys (RS256 and ES256) next to the HS256
development issuer, so algorithm-confusion attacks have a public key to abuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jose import jwt

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.settings import OidcIssuer, Settings
from tests.helpers import ORG, OTHER_ORG, TokenFactory, assert_problem

ROUTE = "/v1/resources"
RSA_ISSUER = "https://idp.example/rsa"
EC_ISSUER = "https://idp.example/ec"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, form: str) -> bytes:
    public = key.public_key()
    if form == "pem":
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if form == "der":
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A hand-made JWS: HMAC-SHA256 over the signing input, or an empty signature."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def valid_claims(issuer: str, **changes: Any) -> dict[str, Any]:
    """Good claims for ``issuer``; a change to ``None`` removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": "allyapi",
        "sub": "emp-1",
        "org": ORG,
        "roles": ["employee"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture(scope="module")
def idp_app(settings: Settings, database: Database) -> FastAPI:
    issuers = [
        OidcIssuer(
            issuer=RSA_ISSUER,
            algorithms=["RS256"],
            public_key=_public(RSA_KEY, "pem").decode(),
            orgs=[ORG],
        ),
        OidcIssuer(
            issuer=EC_ISSUER,
            algorithms=["ES256"],
            public_key=_public(EC_KEY, "pem").decode(),
            orgs=[ORG],
        ),
    ]
    changes = {"oidc_issuers": issuers, "jwt_orgs": [ORG, OTHER_ORG]}
    return create_app(settings.model_copy(update=changes), database)


@pytest.fixture
async def idp_client(idp_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=idp_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def call(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})


async def assert_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await call(client, token)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "emp-1" not in response.text
    assert body.get("detail") in {"invalid token", "a bearer token is required"}


def dev_secret(settings: Settings) -> bytes:
    assert settings.jwt_secret
    return settings.jwt_secret.encode()


# --- the baseline: the good tokens pass -------------------------------------------------------


async def test_valid_dev_token_is_accepted(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    assert (await client.get(ROUTE, headers=tokens.employee)).status_code == 200


@pytest.mark.parametrize(
    ("issuer", "algorithm", "key"),
    [(RSA_ISSUER, "RS256", RSA_KEY), (EC_ISSUER, "ES256", EC_KEY)],
)
async def test_valid_identity_provider_tokens_are_accepted(
    idp_client: httpx.AsyncClient, issuer: str, algorithm: str, key: Any
) -> None:
    token = jwt.encode(valid_claims(issuer), _pem_private(key), algorithm=algorithm)
    assert (await call(idp_client, token)).status_code == 200


async def test_rs256_token_is_refused_by_an_es256_only_issuer(
    idp_client: httpx.AsyncClient,
) -> None:
    token = jwt.encode(valid_claims(EC_ISSUER), _pem_private(RSA_KEY), algorithm="RS256")
    await assert_refused(idp_client, token)


async def test_token_signed_by_another_rsa_key_is_refused(idp_client: httpx.AsyncClient) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_claims(RSA_ISSUER), _pem_private(stranger), algorithm="RS256")
    await assert_refused(idp_client, token)


# --- algorithm attacks ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("with_signature", [False, True])
async def test_alg_none_is_refused(
    client: httpx.AsyncClient, settings: Settings, alg: str, with_signature: bool
) -> None:
    key = dev_secret(settings) if with_signature else None
    token = forge({"alg": alg, "typ": "JWT"}, valid_claims(settings.jwt_issuer), key)
    await assert_refused(client, token)


async def test_stripped_signature_is_refused(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    header, payload, _ = tokens.token("emp-1", "employee").split(".")
    await assert_refused(client, f"{header}.{payload}.")
    await assert_refused(client, f"{header}.{payload}")


async def test_tampered_payload_is_refused(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    header, _, signature = tokens.token("emp-1", "employee").split(".")
    payload = b64url(json.dumps(valid_claims("allyapi-dev", roles=["coordinator"])).encode())
    await assert_refused(client, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algorithms_with_the_dev_secret_are_refused(
    client: httpx.AsyncClient, settings: Settings, alg: str
) -> None:
    token = jwt.encode(valid_claims(settings.jwt_issuer), dev_secret(settings), algorithm=alg)
    await assert_refused(client, token)


@pytest.mark.parametrize("form", ["pem", "der", "openssh"])
@pytest.mark.parametrize(("issuer", "key"), [(RSA_ISSUER, RSA_KEY), (EC_ISSUER, EC_KEY)])
async def test_hs256_signed_with_the_public_key_is_refused(
    idp_client: httpx.AsyncClient, form: str, issuer: str, key: Any
) -> None:
    """The classic HS/RS confusion: the public key used as an HMAC secret."""
    token = forge({"alg": "HS256", "typ": "JWT"}, valid_claims(issuer), _public(key, form))
    await assert_refused(idp_client, token)


# --- header injection: kid, jku, x5u, jwk are never followed ---------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"kid": "../../../../dev/null"},
        {"kid": "' OR '1'='1"},
        {"kid": "unknown-key"},
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": {"kty": "oct", "k": b64url(b"attacker-secret-attacker-secret!!")}},
    ],
)
async def test_injected_key_headers_are_refused(
    client: httpx.AsyncClient, settings: Settings, extra: dict[str, Any]
) -> None:
    """Signed with the attacker's own key, pointing at it: we never fetch or trust it."""
    header = {"alg": "HS256", "typ": "JWT", **extra}
    token = forge(header, valid_claims(settings.jwt_issuer), b"attacker-secret-attacker-secret!!")
    started = time.monotonic()
    await assert_refused(client, token)
    assert time.monotonic() - started < 1  # nothing was fetched


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
async def test_key_location_headers_are_refused_even_when_correctly_signed(
    client: httpx.AsyncClient, settings: Settings, name: str
) -> None:
    """A header naming a key source (or a critical extension we do not implement) is refused
    outright, so no future change can start following it."""
    token = forge(
        {"alg": "HS256", "typ": "JWT", name: ["https://attacker.example/k"]},
        valid_claims(settings.jwt_issuer),
        dev_secret(settings),
    )
    await assert_refused(client, token)


async def test_an_unknown_kid_from_the_real_issuer_is_ignored_not_followed(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """``kid`` only helps choose among an issuer's own keys; for a static key it changes nothing."""
    token = forge(
        {"alg": "HS256", "typ": "JWT", "kid": "whatever"},
        valid_claims(settings.jwt_issuer),
        dev_secret(settings),
    )
    assert (await call(client, token)).status_code == 200


# --- claims -----------------------------------------------------------------------------------


ClaimChange = Callable[[int], dict[str, Any]]
CLAIM_CASES: dict[str, ClaimChange] = {
    "expired": lambda now: {"iat": now - 7200, "exp": now - 3600},
    "expired beyond leeway": lambda now: {"exp": now - 61},
    "nbf in the future": lambda now: {"nbf": now + 3600},
    "iat in the future": lambda now: {"iat": now + 3600},
    "exp missing": lambda now: {"exp": None},
    "aud missing": lambda now: {"aud": None},
    "iss missing": lambda now: {"iss": None},
    "sub missing": lambda now: {"sub": None},
    "org missing": lambda now: {"org": None},
    "iat missing": lambda now: {"iat": None},
    "roles missing": lambda now: {"roles": None},
    "wrong aud": lambda now: {"aud": "another-api"},
    "wrong aud list": lambda now: {"aud": ["another-api", "third"]},
    "wrong iss": lambda now: {"iss": "https://evil.example"},
    "roles a string": lambda now: {"roles": "employee"},
    "roles a dict": lambda now: {"roles": {"employee": True}},
    "roles ints": lambda now: {"roles": [1, 2]},
    "roles unknown": lambda now: {"roles": ["admin"]},
    "roles partly unknown": lambda now: {"roles": ["employee", "superuser"]},
    "roles empty": lambda now: {"roles": []},
    "sub empty": lambda now: {"sub": ""},
    "sub a number": lambda now: {"sub": 42},
    "org a list": lambda now: {"org": ["acme"]},
    "org too long": lambda now: {"org": "o" * 300},
    "exp a string": lambda now: {"exp": "tomorrow"},
    "exp a boolean": lambda now: {"exp": True},
    "nbf a string": lambda now: {"nbf": "now"},
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
async def test_bad_claims_are_refused(
    client: httpx.AsyncClient, settings: Settings, case: str
) -> None:
    claims = valid_claims(settings.jwt_issuer, **CLAIM_CASES[case](int(time.time())))
    await assert_refused(
        client, forge({"alg": "HS256", "typ": "JWT"}, claims, dev_secret(settings))
    )


@pytest.mark.parametrize("case", ["wrong aud", "expired", "roles unknown", "iss missing"])
async def test_bad_claims_are_refused_from_identity_providers_too(
    idp_client: httpx.AsyncClient, case: str
) -> None:
    claims = valid_claims(RSA_ISSUER, **CLAIM_CASES[case](int(time.time())))
    await assert_refused(idp_client, jwt.encode(claims, _pem_private(RSA_KEY), algorithm="RS256"))


async def test_nbf_is_honoured(client: httpx.AsyncClient, settings: Settings) -> None:
    """A not-yet-valid token is refused; once ``nbf`` (within the leeway) has passed it works."""
    now = int(time.time())
    key = dev_secret(settings)
    header = {"alg": "HS256", "typ": "JWT"}
    await assert_refused(
        client, forge(header, valid_claims(settings.jwt_issuer, nbf=now + 120), key)
    )
    within_leeway = forge(header, valid_claims(settings.jwt_issuer, nbf=now + 10), key)
    assert (await call(client, within_leeway)).status_code == 200
    passed = forge(header, valid_claims(settings.jwt_issuer, nbf=now - 10), key)
    assert (await call(client, passed)).status_code == 200


async def test_audience_list_containing_ours_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    claims = valid_claims(settings.jwt_issuer, aud=["portal", "allyapi"])
    token = forge({"alg": "HS256", "typ": "JWT"}, claims, dev_secret(settings))
    assert (await call(client, token)).status_code == 200


# --- garbage and size -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b.c.d.e",
        "....",
        "eyJ.eyJ.eyJ",
        b64url(b"[]") + "." + b64url(b"[]") + ".",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"not json") + ".sig",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b"[" * 4000 + b"]" * 4000) + ".sig",
        b64url(b'{"alg":"HS256"}') + "." + b64url(b'{"exp": Infinity, "iss": 1}') + ".sig",
        b64url(b"[" * 3000 + b"]" * 3000) + "." + b64url(b"{}") + ".sig",
        "\u00e9\u00e9\u00e9.\u00e9.\u00e9",
    ],
)
async def test_garbage_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(ROUTE, headers={"Authorization": b"Bearer " + token.encode()})
    assert_problem(response, 401)


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"]
)
async def test_missing_or_other_scheme_is_refused(
    client: httpx.AsyncClient, authorization: str
) -> None:
    assert_problem(await client.get(ROUTE, headers={"Authorization": authorization}), 401)


async def test_no_authorization_header_is_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(ROUTE), 401)


@pytest.mark.parametrize(("size", "statuses"), [(9 * 1024, {401, 431}), (64 * 1024, {431})])
async def test_oversized_token_is_refused_fast(
    client: httpx.AsyncClient, size: int, statuses: set[int]
) -> None:
    started = time.monotonic()
    response = await call(client, "eyJ" + "A" * size)
    assert response.status_code in statuses
    assert_problem(response, response.status_code)
    assert time.monotonic() - started < 0.5


async def test_a_correctly_signed_huge_token_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    claims = valid_claims(settings.jwt_issuer, padding="x" * 9000)
    token = forge({"alg": "HS256", "typ": "JWT"}, claims, dev_secret(settings))
    assert (await call(client, token)).status_code in {401, 431}
