"""JMAP over WebSocket (RFC 8887) with a real `websockets` client against the real server."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..helpers import CORE, MAIL, JmapClient, LiveServer
from .test_push_eventsource import add_mailbox


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/jmap/ws"


async def open_ws(server: LiveServer, client: JmapClient, **kwargs: Any) -> ClientConnection:
    return await connect(
        ws_url(server),
        subprotocols=["jmap"],  # type: ignore[list-item]
        additional_headers={"Authorization": client.http.headers["Authorization"]},
        **kwargs,
    )


async def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), "JMAP messages are text frames"
    value: dict[str, Any] = orjson.loads(message)
    return value


def request(request_id: str | None, calls: list[Any]) -> str:
    body: dict[str, Any] = {"@type": "Request", "using": [CORE, MAIL], "methodCalls": calls}
    if request_id is not None:
        body["id"] = request_id
    return orjson.dumps(body).decode()


def test_session_advertises_websocket_and_vapid(alice: JmapClient, server: LiveServer) -> None:
    capabilities = alice.session["capabilities"]
    assert capabilities["urn:ietf:params:jmap:websocket"] == {"url": ws_url(server), "supportsPush": True}
    key = capabilities["urn:ietf:params:jmap:webpush-vapid"]["applicationServerKey"]
    assert len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) == 65


def test_requests_and_push_on_one_socket(server: LiveServer, alice: JmapClient) -> None:
    async def scenario() -> None:
        async with await open_ws(server, alice) as ws:
            assert ws.subprotocol == "jmap"
            await ws.send(request("r1", [["Core/echo", {"x": 1}, "c1"]]))
            response = await receive(ws)
            assert response["@type"] == "Response" and response["requestId"] == "r1"
            assert response["methodResponses"] == [["Core/echo", {"x": 1}, "c1"]]
            assert response["sessionState"] == alice.session["state"]

            await ws.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}).decode())
            await asyncio.sleep(0.2)
            new_state = await asyncio.to_thread(add_mailbox, alice, "Over HTTP")
            change = await receive(ws)
            assert change["@type"] == "StateChange"
            assert change["changed"] == {alice.account_id: {"Mailbox": new_state}}
            assert isinstance(change["pushState"], str)
            push_state = change["pushState"]

            await ws.send(orjson.dumps({"@type": "WebSocketPushDisable"}).decode())
            await asyncio.sleep(0.1)
            await asyncio.to_thread(add_mailbox, alice, "Unheard")
            with pytest.raises(TimeoutError):
                await receive(ws, timeout=0.5)

        # A new connection that passes the last pushState hears at once of what it missed.
        async with await open_ws(server, alice) as ws:
            enable = {"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"], "pushState": push_state}
            await ws.send(orjson.dumps(enable).decode())
            missed = await receive(ws)
            assert missed["@type"] == "StateChange" and "Mailbox" in missed["changed"][alice.account_id]

    asyncio.run(scenario())


def test_changes_made_on_the_socket_itself_are_pushed_too(server: LiveServer, alice: JmapClient) -> None:
    async def scenario() -> None:
        async with await open_ws(server, alice) as ws:
            await ws.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}).decode())
            await asyncio.sleep(0.2)
            create = ["Mailbox/set", {"accountId": alice.account_id, "create": {"a": {"name": "Socket"}}}, "s"]
            await ws.send(request("set", [create]))
            kinds = {(await receive(ws))["@type"], (await receive(ws))["@type"]}
            assert kinds == {"Response", "StateChange"}

    asyncio.run(scenario())


def test_several_requests_in_flight_are_answered_by_id(server: LiveServer, alice: JmapClient) -> None:
    async def scenario() -> None:
        async with await open_ws(server, alice) as ws:
            ids = [f"q{i}" for i in range(6)]
            for request_id in ids:
                await ws.send(request(request_id, [["Mailbox/get", {"accountId": alice.account_id}, "g"]]))
            answers = [await receive(ws) for _ in ids]
            for answer in answers:
                # maxConcurrentRequests (8) is not exceeded by six requests.
                assert answer["@type"] == "Response", answer
            assert sorted(a["requestId"] for a in answers) == sorted(ids)

    asyncio.run(scenario())


def test_bad_messages_get_request_errors_and_the_socket_lives_on(server: LiveServer, alice: JmapClient) -> None:
    async def scenario() -> None:
        async with await open_ws(server, alice) as ws:
            await ws.send("The quick brown fox")
            error = await receive(ws)
            assert error["@type"] == "RequestError"
            assert error["type"] == "urn:ietf:params:jmap:error:notJSON" and error["requestId"] is None

            await ws.send(orjson.dumps({"@type": "Mystery", "id": "m1"}).decode())
            error = await receive(ws)
            assert error["type"] == "urn:ietf:params:jmap:error:notRequest" and error["requestId"] == "m1"

            await ws.send("[1, 2]")
            assert (await receive(ws))["type"] == "urn:ietf:params:jmap:error:notRequest"

            await ws.send(orjson.dumps({"@type": "Request", "id": "x", "using": "nope"}).decode())
            error = await receive(ws)
            assert error["type"] == "urn:ietf:params:jmap:error:notRequest" and error["requestId"] == "x"

            await ws.send(request("u", [["Core/echo", {}, "c"]]).replace(MAIL, "urn:example:unknown"))
            assert (await receive(ws))["type"] == "urn:ietf:params:jmap:error:unknownCapability"

            too_many = [["Core/echo", {}, f"c{i}"] for i in range(65)]
            await ws.send(request("big", too_many))
            error = await receive(ws)
            assert error["type"] == "urn:ietf:params:jmap:error:limit" and error["limit"] == "maxCallsInRequest"

            await ws.send(request("still", [["Core/echo", {"ok": True}, "c"]]))
            assert (await receive(ws))["methodResponses"][0][1] == {"ok": True}

            await ws.send(b"\x00binary")
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

    asyncio.run(scenario())


def test_handshake_needs_the_jmap_subprotocol_and_credentials(server: LiveServer, alice: JmapClient) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(server), additional_headers={"Authorization": alice.http.headers["Authorization"]})
        assert refused.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(server), subprotocols=["jmap"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                ws_url(server),
                subprotocols=["jmap"],  # type: ignore[list-item]
                additional_headers={"Authorization": alice.http.headers["Authorization"]},
                origin="https://evil.example",  # type: ignore[arg-type]
            )
        assert refused.value.response.status_code == 403
        token = (await asyncio.to_thread(alice.http.post, "/jmap/access-token")).json()["token"]
        async with await connect(f"{ws_url(server)}?access_token={token}", subprotocols=["jmap"]) as ws:  # type: ignore[list-item]
            await ws.send(request("t", [["Core/echo", {}, "c"]]))
            assert (await receive(ws))["requestId"] == "t"
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{ws_url(server)}?access_token={token}", subprotocols=["jmap"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 401

    asyncio.run(scenario())


def test_malformed_frames_close_the_connection_not_the_server(server: LiveServer, alice: JmapClient) -> None:
    # An unmasked client frame violates RFC 6455 §5.1: the server must fail the connection.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            f"GET /jmap/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: jmap\r\n"
            f"Authorization: {alice.http.headers['Authorization']}\r\n\r\n"
        ).encode()
    )
    handshake = sock.recv(4096)
    assert handshake.startswith(b"HTTP/1.1 101")
    sock.sendall(b"\x81\x05hello")  # text frame, no mask bit
    data = sock.recv(4096)
    assert data[:1] == b"\x88"  # a close frame
    assert int.from_bytes(data[2:4], "big") == 1002  # protocol error
    sock.close()
    # The server carries on.
    assert alice.ok("Core/echo", {"after": 1}) == {"accountId": alice.account_id, "after": 1}
