"""Connecting to push services only at addresses checked at connect time (RFC 8620 §8.6).

A push URL's host was public when the subscription was created, but DNS can change (or be made to
change between two lookups: DNS rebinding). So the check happens where the connection is made: the
host is resolved once, every address it resolves to must be allowed (public, not this server's), and
the socket is opened to one of those very addresses. The HTTP request still names the host (Host
header, TLS SNI and certificate check), so nothing changes for the push service. A connection kept
alive was vetted when it was opened; a new one is vetted again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from .subscription import Resolver


class RefusedAddress(Exception):
    """The push URL's host resolves to an address the server must not connect to."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        super().__init__(f"{host} resolves to {', '.join(addresses)}, which is not a public address")
        self.host = host
        self.addresses = addresses


class VettedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, vets, then connects to the vetted address."""

    def __init__(
        self,
        resolve: Resolver,
        allowed: Callable[[str], bool],
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.resolve = resolve
        self.allowed = allowed
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.run_in_executor(None, lambda: list(self.resolve(host, port)))
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        # Every address must pass, not just the one used: a name that mixes public and inside
        # addresses is refused, as at /set time.
        refused = [a for a in addresses if not self.allowed(a)]
        if refused:
            raise RefusedAddress(host, refused)
        error: Exception | None = None
        for address in dict.fromkeys(addresses):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("push services are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a connection pool that connects through a `VettedBackend`."""

    def __init__(self, backend: VettedBackend, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx takes no network backend, so its pool is replaced by one built the same way with ours
        # (the request mapping and error translation of httpx stay as they are).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
