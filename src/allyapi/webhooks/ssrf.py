"""The SSRF guard: webhook URLs must not reach the server's own network.

A URL is checked when it is registered and again before every delivery (DNS may change in
between). Every address the host resolves to must be globally routable: loopback, private,
link-local (cloud metadata lives there), multicast, reserved and unspecified addresses are
refused, unless ``ALLYAPI_WEBHOOK_ALLOW_PRIVATE`` (on in development, off in production).

DNS rebinding (a name that answers a public address to our check and a private one to the
connection a moment later) is closed by pinning: a delivery resolves the host once
(``resolve_for_delivery``), and the HTTP client's network backend (``PinnedBackend``)
connects to exactly those vetted addresses, never resolving the name again. TLS still
verifies the certificate against the host name (SNI and the check use the URL's host).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import httpcore

# Host → the addresses vetted for the delivery running in this task (see PinnedBackend).
PINS: contextvars.ContextVar[Mapping[str, tuple[str, ...]]] = contextvars.ContextVar("pins")


class BlockedUrl(ValueError):
    """The URL is not acceptable (scheme, host, or where the host resolves to)."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_shape(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Scheme, no credentials, a host: returns (host, port). No network."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[" (an unclosed IPv6 literal): a 422, never a 500
        raise BlockedUrl("the URL is not valid") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise BlockedUrl("the URL must use https")
    if parts.username or parts.password:
        raise BlockedUrl("the URL must not carry credentials")
    if not parts.hostname:
        raise BlockedUrl("the URL needs a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BlockedUrl("the URL has an invalid port") from None
    return parts.hostname, port


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise BlockedUrl unless ``url`` may be called (resolves the host, without blocking)."""
    if not allow_private:
        await resolve_for_delivery(url, allow_private=False)
    else:
        check_shape(url, allow_private=True)


async def resolve_for_delivery(url: str, *, allow_private: bool) -> tuple[str, tuple[str, ...]]:
    """The URL's host and the addresses a delivery may connect to (all vetted).

    With private targets allowed (development) the addresses are still resolved and pinned,
    only not refused, so the pinned path is the one every delivery takes.
    """
    host, port = check_shape(url, allow_private=allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise BlockedUrl("the URL's host does not resolve") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise BlockedUrl("the URL's host does not resolve")
    if not allow_private and any(_refused(ipaddress.ip_address(a)) for a in addresses):
        raise BlockedUrl("the URL resolves to a private or reserved address")
    return _key(host), addresses


def _key(host: str) -> str:
    return host.strip("[]").lower()


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses pinned for this task's delivery, never to a fresh lookup.

    Outside a delivery (no pins set) it is the plain backend; inside one, a host that was
    not vetted is refused rather than resolved.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pins = PINS.get(None)
        if pins is None:
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = pins.get(_key(host))
        if not addresses:
            raise httpcore.ConnectError("host was not vetted for this delivery")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
