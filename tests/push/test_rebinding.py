"""Push URLs are vetted where the connection is made (RFC 8620 §8.6): a host that was public when the
subscription was created but now resolves inside (DNS rebinding) is never connected to, and the
address that was vetted is the one connected to, with the name kept in the request."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from tidings.push.subscription import address_is_public
from tidings.push.transport import RefusedAddress, VettedBackend, VettedTransport
from tidings.store.base import PushSubscriptionRow

from ..helpers import LiveServer, make_tidings
from ..wire.test_push_eventsource import add_mailbox
from ..wire.test_push_subscription import push_call
from .pushtools import PushEndpoint

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=0)


class Dns:
    """A resolver whose answers the test changes, counting lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host}: no such host")
        return list(self.table[host])


def post(transport: VettedTransport, url: str) -> int:
    async def send() -> int:
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            response = await client.post(url, content=b"{}", headers={"Content-Type": "application/json"})
            return response.status_code

    return asyncio.run(send())


def test_the_vetted_address_is_connected_to_and_the_name_kept(endpoint: PushEndpoint) -> None:
    dns = Dns({"push.example.net": ["127.0.0.1"]})
    port = endpoint.server.server_address[1]
    # A policy that lets loopback pass, so the real endpoint on 127.0.0.1 can show what it receives.
    transport = VettedTransport(VettedBackend(dns, lambda address: True), LIMITS)
    assert post(transport, f"http://push.example.net:{port}/sub/1") == 201
    received = endpoint.next()
    assert received.path == "/sub/1" and received.headers["host"] == f"push.example.net:{port}"
    assert dns.lookups == ["push.example.net"]  # one lookup, the one vetted: nothing to race


def test_a_name_resolving_inside_is_never_connected_to(endpoint: PushEndpoint) -> None:
    port = endpoint.server.server_address[1]
    for table in ({"push.example.net": ["127.0.0.1"]}, {"push.example.net": ["93.184.215.14", "127.0.0.1"]}):
        transport = VettedTransport(VettedBackend(Dns(table), address_is_public), LIMITS)
        with pytest.raises(RefusedAddress) as refused:
            post(transport, f"http://push.example.net:{port}/x")
        assert refused.value.addresses == ["127.0.0.1"]
    # The real resolver, the real name: localhost is loopback.
    transport = VettedTransport(VettedBackend(_system_resolver, address_is_public), LIMITS)
    with pytest.raises(RefusedAddress):
        post(transport, f"http://localhost:{port}/x")
    assert endpoint.nothing(0.3)


def _system_resolver(host: str, port: int) -> list[str]:
    from tidings.push.subscription import default_resolver

    return default_resolver(host, port)


def test_a_subscription_whose_host_turned_local_gets_nothing(
    tmp_path: Path, endpoint: PushEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """The server as run for real (insecure push off): a subscription to a real endpoint on loopback,
    reached by the name "localhost", as if the name had been public at /set time."""
    tidings = make_tidings(tmp_path / "data", allow_insecure_push=False)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings).start()
    try:
        alice = live.client("alice", "secret")
        now = int(time.time())
        with tidings.store.push(write=True) as tx:
            tx.insert(
                PushSubscriptionRow(
                    id="Plocal", user_id=1, credential="password:1:x", device_client_id="d",
                    url=f"http://localhost:{endpoint.server.server_address[1]}/x", p256dh=None, auth=None,
                    verification_code="c", verified=True, expires_at=now + 3600, types=None,
                ),
                now,
            )
        with caplog.at_level(logging.WARNING, logger="tidings.push"):
            add_mailbox(alice, "Not for loopback")
            assert endpoint.nothing(1.5), "a push reached an endpoint on loopback"
        assert any("Plocal" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records)
    finally:
        live.stop()
        tidings.close()


def test_rebinding_after_set_time_is_caught_at_delivery(
    tmp_path: Path, endpoint: PushEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A host public when subscribed (so /set accepts it), re-pointed at loopback before the
    verification goes out: the server never connects."""
    tidings = make_tidings(tmp_path / "data", allow_insecure_push=False)
    tidings.accounts.add_user("alice", "secret")
    tidings.push.subscriptions.resolve = Dns({"push.example.net": ["93.184.215.14"]})  # what /set saw
    dns = Dns({"push.example.net": ["127.0.0.1"]})  # what the name says when the POST connects
    tidings.push.pusher.resolve = dns
    live = LiveServer(tidings).start()
    try:
        alice = live.client("alice", "secret")
        url = f"https://push.example.net:{endpoint.server.server_address[1]}/v"
        with caplog.at_level(logging.WARNING, logger="tidings.push"):
            _, out = push_call(alice, "PushSubscription/set", {"create": {"s": {"deviceClientId": "d", "url": url}}})
            sub_id = out["created"]["s"]["id"]
            assert endpoint.nothing(1.0)
        assert dns.lookups.count("push.example.net") == 1  # resolved once, when connecting
        assert any(sub_id in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records)
    finally:
        live.stop()
        tidings.close()
