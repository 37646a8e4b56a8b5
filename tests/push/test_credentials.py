"""PushSubscriptions are tied to the credential that created them (RFC 8620 §7.2), end to end: a real
server on loopback, real HTTP and WebSocket clients, a real push endpoint, both stores."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..helpers import CORE, JmapClient, LiveServer, basic, make_tidings
from ..wire.test_push_eventsource import add_mailbox
from ..wire.test_push_subscription import push_call, subscribe, verify
from .pushtools import PushEndpoint


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    tidings = make_tidings(tmp_path / "data", allow_insecure_push=True)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings).start()
    yield live
    live.stop()
    tidings.close()


def bearer(server: LiveServer, label: str) -> JmapClient:
    return JmapClient(server.url, "Bearer " + server.tidings.accounts.create_token("alice", label))


def subscribed(client: JmapClient, endpoint: PushEndpoint, path: str) -> str:
    """A verified subscription of `client` to endpoint/path; returns its id."""
    subscribe(client, f"{endpoint.url}/{path}")
    return verify(client, endpoint)


def visible(client: JmapClient) -> list[str]:
    _, got = push_call(client, "PushSubscription/get", {"ids": None})
    return [s["id"] for s in got["list"]]


def stored(server: LiveServer) -> dict[str, str]:
    """Every subscription in the store, id to credential id."""
    with server.tidings.store.push() as tx:
        return {r.id: r.credential for r in tx.of_user(1, int(time.time()))}


def paths_received(endpoint: PushEndpoint, wait: float) -> list[str]:
    """The paths of every POST that arrives within `wait` seconds."""
    paths = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            paths.append(endpoint.received.get(timeout=left).path)
        except queue.Empty:
            break
    return paths


def test_other_credentials_of_the_same_user_neither_see_nor_touch_it(
    server: LiveServer, endpoint: PushEndpoint
) -> None:
    phone, laptop, password = bearer(server, "phone"), bearer(server, "laptop"), server.client("alice", "secret")
    sub_id = subscribed(phone, endpoint, "phone")
    assert visible(phone) == [sub_id]
    for other in (laptop, password):
        # §7.2.1: only subscriptions "created using the same authentication credentials" are returned.
        assert visible(other) == []
        _, got = push_call(other, "PushSubscription/get", {"ids": [sub_id]})
        assert got["list"] == [] and got["notFound"] == [sub_id]
        _, out = push_call(other, "PushSubscription/set", {"update": {sub_id: {"types": ["Email"]}}})
        assert out["notUpdated"][sub_id]["type"] == "notFound"
        _, out = push_call(other, "PushSubscription/set", {"destroy": [sub_id]})
        assert out["notDestroyed"][sub_id]["type"] == "notFound"
    # Untouched: still there, still with every type, still pushed to.
    _, got = push_call(phone, "PushSubscription/get", {"ids": [sub_id]})
    assert got["list"][0]["types"] is None
    state = add_mailbox(password, "Seen by the phone")
    assert orjson.loads(endpoint.next().body)["changed"][password.account_id]["Mailbox"] == state
    # Each credential sees its own.
    laptop_sub = subscribed(laptop, endpoint, "laptop")
    assert visible(laptop) == [laptop_sub] and visible(phone) == [sub_id] and visible(password) == []


def test_revoking_a_token_destroys_its_subscriptions_and_stops_delivery(
    server: LiveServer, endpoint: PushEndpoint
) -> None:
    phone, laptop = bearer(server, "phone"), bearer(server, "laptop")
    password = server.client("alice", "secret")
    phone_sub = subscribed(phone, endpoint, "phone")
    laptop_sub = subscribed(laptop, endpoint, "laptop")
    password_sub = subscribed(password, endpoint, "password")
    add_mailbox(password, "Before")
    assert sorted(paths_received(endpoint, 1.0)) == ["/laptop", "/password", "/phone"]

    server.tidings.accounts.revoke_token("alice", "phone")  # what `tidings token revoke` calls
    assert set(stored(server)) == {laptop_sub, password_sub}
    assert phone.http.post("/jmap/api/", json={"using": [CORE], "methodCalls": []}).status_code == 401
    add_mailbox(password, "After")
    assert sorted(paths_received(endpoint, 1.0)) == ["/laptop", "/password"]
    assert visible(laptop) == [laptop_sub] and visible(password) == [password_sub]
    assert phone_sub not in stored(server)


def test_a_new_password_destroys_what_the_old_one_subscribed(server: LiveServer, endpoint: PushEndpoint) -> None:
    old = server.client("alice", "secret")
    phone = bearer(server, "phone")
    subscribed(old, endpoint, "password")
    phone_sub = subscribed(phone, endpoint, "phone")

    server.tidings.accounts.set_password("alice", "secret")  # even the same password: a new credential
    assert list(stored(server)) == [phone_sub]
    fresh = server.client("alice", "secret")
    assert visible(fresh) == []
    add_mailbox(fresh, "After the change")
    assert paths_received(endpoint, 1.0) == ["/phone"]


def test_removing_the_user_erases_every_subscription(server: LiveServer, endpoint: PushEndpoint) -> None:
    subscribed(server.client("alice", "secret"), endpoint, "password")
    subscribed(bearer(server, "phone"), endpoint, "phone")
    server.tidings.accounts.remove_user("alice")
    with server.tidings.store.push() as tx:
        assert tx.count(1) == 0


def test_a_retry_in_flight_stops_when_the_token_is_revoked(server: LiveServer, endpoint: PushEndpoint) -> None:
    phone = bearer(server, "phone")
    subscribed(phone, endpoint, "phone")
    endpoint.statuses = [503, 503, 503]  # the push service fails; the server would retry after 1 s, 2 s...
    add_mailbox(phone, "Retried")
    assert endpoint.next().path == "/phone"
    server.tidings.accounts.revoke_token("alice", "phone")
    assert endpoint.nothing(3.5), "a retry reached the endpoint of a destroyed subscription"


def test_an_access_token_stands_for_the_credential_that_obtained_it(
    server: LiveServer, endpoint: PushEndpoint
) -> None:
    phone, laptop = bearer(server, "phone"), bearer(server, "laptop")
    phone_sub = subscribed(phone, endpoint, "phone")
    laptop_sub = subscribed(laptop, endpoint, "laptop")
    ws_url = server.url.replace("http://", "ws://") + "/jmap/ws"

    async def ws_call(socket: Any, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        request = {"@type": "Request", "id": "r", "using": [CORE], "methodCalls": [[name, args, "c"]]}
        await socket.send(orjson.dumps(request).decode())
        response = orjson.loads(await asyncio.wait_for(socket.recv(), 10))
        out_name, out, _ = response["methodResponses"][0]
        return str(out_name), dict(out)

    async def scenario() -> None:
        token = (await asyncio.to_thread(phone.http.post, "/jmap/access-token")).json()["token"]
        async with connect(f"{ws_url}?access_token={token}", subprotocols=["jmap"]) as ws:  # type: ignore[list-item]
            _, got = await ws_call(ws, "PushSubscription/get", {"ids": None})
            assert [s["id"] for s in got["list"]] == [phone_sub]

            # The socket does not outlive the token's revocation: its next request closes it
            # (1008), as an HTTP request with the token would get 401; nothing is subscribed in the
            # revoked credential's name.
            await asyncio.to_thread(server.tidings.accounts.revoke_token, "alice", "phone")
            create = {"create": {"s": {"deviceClientId": "d", "url": f"{endpoint.url}/late"}}}
            calls = [["PushSubscription/set", create, "c"]]
            request = {"@type": "Request", "id": "late", "using": [CORE], "methodCalls": calls}
            await ws.send(orjson.dumps(request).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    asyncio.run(scenario())
    assert list(stored(server)) == [laptop_sub]
    assert paths_received(endpoint, 0.3) == []


def test_access_tokens_of_a_revoked_credential_are_void(server: LiveServer) -> None:
    phone = bearer(server, "phone")
    token = phone.http.post("/jmap/access-token").json()["token"]
    server.tidings.accounts.revoke_token("alice", "phone")
    response = httpx.get(f"{server.url}/jmap/eventsource/?types=*&closeafter=state&ping=0&access_token={token}")
    assert response.status_code == 401


def test_basic_and_bearer_of_one_user_are_different_credentials(server: LiveServer, endpoint: PushEndpoint) -> None:
    password = JmapClient(server.url, basic("alice", "secret"))
    sub_id = subscribed(password, endpoint, "password")
    # The same password again, in a new connection, is the same credential.
    assert visible(server.client("alice", "secret")) == [sub_id]
    assert visible(bearer(server, "phone")) == []
