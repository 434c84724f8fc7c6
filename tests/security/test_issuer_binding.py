"""Identity is bound to its issuer (docs/identity.md): an issuer speaks only for its orgs, and
the same ``sub`` at two issuers is two people: separate requests, ally profiles,
Idempotency-Keys and rate-limit buckets.

Five issuers at once, as a group of companies or an IdP migration would configure them: the
HS256 development issuer (acme and globex), static-key issuers A (RSA, acme) and B (EC,
globex), and JWKS issuers J (acme) and K (globex), served by the fake IdP of tests/oidc.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from allyapi.app import create_app
from allyapi.core.db.session import Database
from allyapi.core.settings import OidcIssuer, Settings
from tests.contact_requests.factories import BODY, make_ally
from tests.helpers import ORG, OTHER_ORG, TokenFactory, assert_problem
from tests.oidc.idp import (
    JwksServer,
    PrivateKey,
    mint,
    new_ec,
    new_rsa,
    public_jwk,
    public_pem,
    serving,
)

STATIC_A, STATIC_B = "https://a.idp.example", "https://b.idp.example"
JWKS_J, JWKS_K = "https://j.idp.example", "https://k.idp.example"
KEY_A, KEY_B, KEY_J, KEY_K = new_rsa(), new_ec(), new_rsa(), new_ec()
KEYS: dict[str, tuple[PrivateKey, str | None]] = {
    STATIC_A: (KEY_A, None),
    STATIC_B: (KEY_B, None),
    JWKS_J: (KEY_J, "j1"),
    JWKS_K: (KEY_K, "k1"),
}
DEV = "dev"  # the HS256 issuer, minted by TokenFactory


@pytest.fixture(scope="module")
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.publish(public_jwk(KEY_J, "j1"), public_jwk(KEY_K, "k1"))
    async with serving(server):
        yield server


@pytest.fixture(scope="module")
def bound_app(settings: Settings, database: Database, jwks: JwksServer) -> FastAPI:
    issuers = [
        OidcIssuer(issuer=STATIC_A, algorithms=["RS256"], public_key=public_pem(KEY_A), orgs=[ORG]),
        OidcIssuer(
            issuer=STATIC_B, algorithms=["ES256"], public_key=public_pem(KEY_B), orgs=[OTHER_ORG]
        ),
        OidcIssuer(issuer=JWKS_J, algorithms=["RS256"], jwks_url=jwks.url, orgs=[ORG]),
        OidcIssuer(issuer=JWKS_K, algorithms=["ES256"], jwks_url=jwks.url, orgs=[OTHER_ORG]),
    ]
    changes = {"oidc_issuers": issuers, "jwt_orgs": [ORG, OTHER_ORG]}
    return create_app(settings.model_copy(update=changes), database)


@pytest.fixture
async def http(bound_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=bound_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def as_(issuer: str, tokens: TokenFactory, sub: str, *roles: str, org: str = ORG) -> dict[str, str]:
    if issuer == DEV:
        return tokens.headers(sub, *roles, org=org)
    key, kid = KEYS[issuer]
    return {
        "Authorization": "Bearer " + mint(key, issuer, kid=kid, sub=sub, org=org, roles=list(roles))
    }


# --- an issuer speaks only for its orgs --------------------------------------------------------


@pytest.mark.parametrize("intruder", [STATIC_B, JWKS_K], ids=["static-key", "jwks"])
async def test_an_issuer_cannot_act_in_an_org_it_does_not_speak_for(
    http: httpx.AsyncClient, tokens: TokenFactory, intruder: str
) -> None:
    """B (globex's IdP) mints a coordinator token claiming acme: refused before anything."""
    volunteered = await http.post(
        "/v1/allies", json={"display_name": "Ben"}, headers=as_(DEV, tokens, "ben", "employee")
    )
    assert volunteered.status_code == 201, volunteered.text
    ally_id = volunteered.json()["id"]

    forged = as_(intruder, tokens, "mallory", "employee", "coordinator", org=ORG)
    assert_problem(await http.get("/v1/allies?status=applied", headers=forged), 401)
    assert_problem(await http.post(f"/v1/allies/{ally_id}/approve", headers=forged), 401)

    # Acme's own issuers still act there, and the ally was never approved by the intruder.
    for issuer in (STATIC_A, JWKS_J, DEV):
        own = as_(issuer, tokens, "carol", "employee", "coordinator")
        queue = await http.get("/v1/allies?status=applied", headers=own)
        assert queue.status_code == 200, (issuer, queue.text)
        assert [ally["id"] for ally in queue.json()["items"]] == [ally_id]
    # ... and the intruder is welcome in its own org.
    home = as_(intruder, tokens, "mallory", "employee", "coordinator", org=OTHER_ORG)
    assert (await http.get("/v1/allies?status=applied", headers=home)).status_code == 200


async def test_the_hs256_issuer_speaks_only_for_its_configured_orgs(
    settings: Settings, database: Database, tokens: TokenFactory
) -> None:
    app = create_app(settings.model_copy(update={"jwt_orgs": [ORG]}), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/v1/resources", headers=tokens.employee)).status_code == 200
        assert_problem(await client.get("/v1/resources", headers=tokens.other_org_employee), 401)


# --- the same sub at two issuers is two people -------------------------------------------------

PAIRS = [(STATIC_A, JWKS_J), (DEV, STATIC_A), (JWKS_J, DEV)]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["static-jwks", "dev-static", "jwks-dev"])
async def test_the_same_sub_at_two_issuers_sees_two_separate_histories(
    http: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    tokens: TokenFactory,
    first: str,
    second: str,
) -> None:
    ally = await make_ally(session, settings, "robin")
    alice_1 = as_(first, tokens, "alice@acme.example", "employee")
    alice_2 = as_(second, tokens, "alice@acme.example", "employee")
    body: dict[str, Any] = {**BODY, "ally_id": str(ally.id)}
    key = {"Idempotency-Key": "the-same-key"}

    created = await http.post("/v1/contact-requests", json=body, headers={**alice_1, **key})
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]

    # The other issuer's alice: no history, no access, and her own Idempotency-Key scope.
    assert (await http.get("/v1/me/contact-requests", headers=alice_2)).json()["items"] == []
    assert_problem(await http.get(f"/v1/contact-requests/{request_id}", headers=alice_2), 404)
    assert_problem(await http.delete(f"/v1/contact-requests/{request_id}", headers=alice_2), 404)
    second_request = await http.post("/v1/contact-requests", json=body, headers={**alice_2, **key})
    assert second_request.status_code == 201, second_request.text
    assert "idempotent-replayed" not in second_request.headers
    assert second_request.json()["id"] != request_id

    mine_1 = (await http.get("/v1/me/contact-requests", headers=alice_1)).json()["items"]
    mine_2 = (await http.get("/v1/me/contact-requests", headers=alice_2)).json()["items"]
    assert [item["id"] for item in mine_1] == [request_id]
    assert [item["id"] for item in mine_2] == [second_request.json()["id"]]

    # Two ally profiles, not one (no 409), each found only by its own issuer's alice.
    for headers in (alice_1, alice_2):
        profile = await http.post("/v1/allies", json={"display_name": "Alice"}, headers=headers)
        assert profile.status_code == 201, profile.text
    own_1 = (await http.get("/v1/me/ally-profile", headers=alice_1)).json()["id"]
    own_2 = (await http.get("/v1/me/ally-profile", headers=alice_2)).json()["id"]
    assert own_1 != own_2

    # Two rate-limit buckets: each alice has her own count of writes (the second also tried
    # to erase the first's request).
    buckets = (
        await session.execute(
            text("SELECT key, count FROM rate_limit_buckets WHERE policy = 'writes'")
        )
    ).all()
    assert sorted(row.count for row in buckets) == [2, 3]


async def test_a_cached_principal_keeps_its_issuer(
    bound_app: FastAPI, tokens: TokenFactory
) -> None:
    verifier = bound_app.state.verifier
    seen = {}
    for issuer in (DEV, STATIC_A, JWKS_J):
        token = as_(issuer, tokens, "alice", "employee")["Authorization"].removeprefix("Bearer ")
        first = await verifier.verify_async(token)
        assert await verifier.verify_async(token) is first  # served from the cache
        seen[issuer] = first
    assert {principal.issuer for principal in seen.values()} == {
        tokens.settings.jwt_issuer,
        STATIC_A,
        JWKS_J,
    }
    assert len({principal.subject for principal in seen.values()}) == 3
    assert seen[DEV].subject.issuer is None  # the legacy issuer (docs/identity.md)


# --- configuration -----------------------------------------------------------------------------


METRICS_TOKEN = "m" * 40  # production refuses to start without one


def oidc(name: str, **extra: Any) -> dict[str, Any]:
    return {"issuer": name, "algorithms": ["RS256"], "public_key": public_pem(KEY_A), **extra}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"oidc_issuers": [oidc(STATIC_A, orgs=[ORG])]}, "HS256 issuer"),
        ({"jwt_orgs": [ORG], "oidc_issuers": [oidc(STATIC_A)]}, STATIC_A),
        (
            {
                "env": "production",
                "metrics_token": METRICS_TOKEN,
                "oidc_issuers": [oidc(STATIC_A), oidc(STATIC_B, orgs=[ORG])],
            },
            STATIC_A,
        ),
        ({"jwt_orgs": [ORG], "oidc_issuers": [oidc("allyapi-dev", orgs=[ORG])]}, "twice"),
        ({"jwt_orgs": ["a" * 129]}, "org id"),
        ({"jwt_orgs": ["ac\x00me"]}, "org id"),
        ({"oidc_issuers": [oidc(STATIC_A, orgs=[])]}, "at least 1"),
        ({"legacy_pseudonym_issuer": "https://nobody.example"}, "names no configured issuer"),
    ],
)
def test_unbound_issuers_are_a_configuration_error(changes: dict[str, Any], reason: str) -> None:
    base: dict[str, Any] = {
        "_env_file": None,
        "database_url": "sqlite+aiosqlite:///x.db",
        "pseudonym_key": "p" * 40,
        "data_keys": "k1:" + "A" * 43 + "=",
    }
    with pytest.raises(ValueError, match=reason):
        Settings(**{**base, **changes})


def test_a_single_identity_provider_may_speak_for_any_org() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        database_url="postgresql+asyncpg://db/allyapi",
        pseudonym_key="p" * 40,
        data_keys="k1:" + "A" * 43 + "=",
        metrics_token=METRICS_TOKEN,
        oidc_issuers=[oidc(STATIC_A)],
    )
    assert settings.issuer_orgs() == {STATIC_A: None}
    assert settings.legacy_issuer == STATIC_A


def test_production_needs_the_orgs_of_the_hs256_issuer() -> None:
    with pytest.raises(ValueError, match="ALLYAPI_JWT_ORGS"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            env="production",
            database_url="postgresql+asyncpg://db/allyapi",
            jwt_secret="s" * 40,
            pseudonym_key="p" * 40,
            data_keys="k1:" + "A" * 43 + "=",
        )


def test_legacy_issuer_defaults() -> None:
    common: dict[str, Any] = {"_env_file": None, "jwt_orgs": [ORG]}
    two = [oidc(STATIC_A, orgs=[ORG]), oidc(STATIC_B, orgs=[ORG])]
    assert Settings(**common, oidc_issuers=two).legacy_issuer == "allyapi-dev"
    named = Settings(**common, oidc_issuers=two, legacy_pseudonym_issuer=STATIC_B)
    assert named.legacy_issuer == STATIC_B
    assert Settings(**common, legacy_pseudonym_issuer="").legacy_issuer is None


async def test_a_request_id_is_not_enough_for_another_issuers_person(
    http: httpx.AsyncClient, session: AsyncSession, settings: Settings, tokens: TokenFactory
) -> None:
    """Feedback on a completed request is the requester's alone: not her namesake's."""
    ally = await make_ally(session, settings, "robin")
    alice = as_(STATIC_A, tokens, "alice", "employee")
    created = await http.post(
        "/v1/contact-requests", json={**BODY, "ally_id": str(ally.id)}, headers=alice
    )
    request_id = created.json()["id"]
    robin = tokens.headers("robin", "employee")
    assert (await http.post(f"/v1/contact-requests/{request_id}/accept", headers=robin)).is_success
    done = await http.post(
        f"/v1/contact-requests/{request_id}/complete",
        json={"signposted": False, "wellbeing": 4},
        headers=robin,
    )
    assert done.status_code == 200, done.text
    namesake = as_(JWKS_J, tokens, "alice", "employee")
    feedback = {"rating": 5, "felt_heard": True, "would_recommend": True}
    assert_problem(
        await http.post(
            f"/v1/contact-requests/{request_id}/feedback", json=feedback, headers=namesake
        ),
        404,
    )
    given = await http.post(
        f"/v1/contact-requests/{request_id}/feedback", json=feedback, headers=alice
    )
    assert given.status_code == 201, given.text
    assert uuid.UUID(request_id)


# --- subs that integrations send ---------------------------------------------------------------


async def test_a_roster_keeps_an_ally_listed_at_any_issuer_of_the_org(
    http: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """An HRIS names people, not identity providers: "kim" on the roster keeps Kim's profile
    whether it was made through the HS256 issuer or through A; "lee", absent, is retired at
    both; B (globex only) plays no part in acme's roster."""
    profiles = {}
    for issuer, sub in ((DEV, "kim"), (STATIC_A, "kim"), (STATIC_A, "lee"), (JWKS_J, "lee")):
        made = await http.post(
            "/v1/allies", json={"display_name": sub}, headers=as_(issuer, tokens, sub, "employee")
        )
        assert made.status_code == 201, made.text
        profiles[(issuer, sub)] = made.json()["id"]
    synced = await http.post(
        "/v1/allies/roster-sync",
        json={"subs": ["kim"]},
        headers=as_(STATIC_A, tokens, "hris", "integration"),
    )
    assert synced.json() == {"retired": 2, "kept": 2}, synced.text
    for (issuer, sub), ally_id in profiles.items():
        row = await http.get(f"/v1/allies/{ally_id}", headers=tokens.coordinator)
        assert row.json()["status"] == ("applied" if sub == "kim" else "retired"), (issuer, sub)


async def test_a_training_batch_names_people_at_the_callers_own_issuer(
    http: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    """One row is one person: the LMS's ``sub`` is resolved at the issuer of its own token."""
    at_dev = await http.post(
        "/v1/allies", json={"display_name": "Max"}, headers=as_(DEV, tokens, "max", "employee")
    )
    at_a = await http.post(
        "/v1/allies", json={"display_name": "Max"}, headers=as_(STATIC_A, tokens, "max", "employee")
    )
    course = await http.post(
        "/v1/training-courses", json={"name": "MHFA"}, headers=tokens.coordinator
    )
    assert course.status_code == 201, course.text
    row = {
        "external_id": "lms-1",
        "sub": "max",
        "course_name": "MHFA",
        "completed_on": "2024-01-01",
    }
    batch = await http.post(
        "/v1/training-records/batch",
        json={"rows": [row]},
        headers=as_(STATIC_A, tokens, "lms", "integration"),
    )
    assert batch.json()["created"] == 1, batch.text
    records = await http.get("/v1/training-records", headers=tokens.coordinator)
    assert [r["ally_id"] for r in records.json()["items"]] == [at_a.json()["id"]]
    assert at_dev.json()["id"] != at_a.json()["id"]
