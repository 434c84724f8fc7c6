"""The SSRF guard: webhook URLs must not reach the server's own network.

A URL is checked when it is registered and again before every delivery (DNS may change in
between). Every address the host resolves to must be globally routable: loopback, private,
link-local (cloud metadata lives there), multicast, reserved and unspecified addresses are
refused, unless ``ALLYAPI_WEBHOOK_ALLOW_PRIVATE`` (on in development, off in production).
Remaining gap, documented: a name that resolves differently between our check and httpx's
own lookup (DNS rebinding within milliseconds); deploy an egress proxy where that matters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


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
    parts = urlsplit(url)
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
    host, port = check_shape(url, allow_private=allow_private)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise BlockedUrl("the URL's host does not resolve") from None
    addresses = {info[4][0] for info in infos}
    if not addresses:
        raise BlockedUrl("the URL's host does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(str(text).split("%", 1)[0])
        if _refused(address):
            raise BlockedUrl("the URL resolves to a private or reserved address")
