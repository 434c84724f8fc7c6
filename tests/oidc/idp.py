"""A fake identity provider for tests: RSA/EC keys, a JWKS served on 127.0.0.1, token minting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def new_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def alg_of(key: PrivateKey) -> str:
    return "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    data: dict[str, Any] = jwk.construct(public_pem(key), alg_of(key)).to_dict()
    return {**data, "kid": kid, "use": "sig"}


def mint(
    key: PrivateKey,
    issuer: str,
    *,
    kid: str | None = None,
    headers: dict[str, Any] | None = None,
    audience: str = "allyapi",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"iss": issuer, "aud": audience, "sub": "idp-user-1", "iat": now, "exp": now + 600}
    payload.update(claims)
    extra = dict(headers or {})
    if kid is not None:
        extra["kid"] = kid
    token: str = jwt.encode(payload, private_pem(key), algorithm=alg_of(key), headers=extra)
    return token


@dataclass
class JwksServer:
    """Serves ``document`` at /jwks.json; counts hits (on every path)."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    hits: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def publish(self, *keys: dict[str, Any]) -> None:
        self.document = {"keys": list(keys)}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.hits += 1
        body = json.dumps(self.document).encode()
        writer.write(
            f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def serving(server: JwksServer) -> AsyncIterator[JwksServer]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
