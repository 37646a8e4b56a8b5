"""Push of a change made by mail delivery: LMTP into an account reaches its EventSource and WebSocket
clients (RFC 8620 §7; RFC 8887 §4.3.5), as a change made through the API does."""

from __future__ import annotations

import asyncio
import smtplib

import orjson

from ..helpers import JmapClient, LiveServer
from ..wire.test_push_eventsource import EventReader
from ..wire.test_push_websocket import open_ws, receive

MESSAGE = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: Pushed by delivery\r\n"
    b"Message-ID: <push-by-lmtp@example.org>\r\n"
    b"\r\n"
    b"Delivered over LMTP.\r\n"
)


def _email_state(client: JmapClient) -> str:
    return str(client.ok("Email/get", {"ids": []})["state"])


def test_event_source_sees_an_lmtp_delivery(
    mail_server: LiveServer, alice: JmapClient, lmtp: smtplib.LMTP
) -> None:
    before = _email_state(alice)
    url = f"{mail_server.url}/jmap/eventsource/?types=Email,Mailbox&closeafter=no&ping=0"
    reader = EventReader(url, {"Authorization": alice.http.headers["Authorization"]})
    try:
        assert reader.status == 200
        refused = lmtp.sendmail("carol@example.org", ["alice@example.com"], MESSAGE)
        assert refused == {}
        events = reader.wait_for("state")
        changed = orjson.loads(events[0]["data"])["changed"][alice.account_id]
        after = _email_state(alice)
        assert after != before
        # Delivery changes the Email state (and the Inbox counts); the event names the new state.
        states = {}
        for event in reader.wait_for("state"):
            states.update(orjson.loads(event["data"])["changed"][alice.account_id])
        assert states.get("Email") == after
        assert "Email" in changed or "Mailbox" in changed
    finally:
        reader.close()


def test_websocket_sees_an_lmtp_delivery(mail_server: LiveServer, alice: JmapClient, lmtp: smtplib.LMTP) -> None:
    async def scenario() -> None:
        async with await open_ws(mail_server, alice) as ws:
            await ws.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Email"]}).decode())
            await asyncio.sleep(0.2)
            refused = await asyncio.to_thread(
                lmtp.sendmail, "carol@example.org", ["alice@example.com"], MESSAGE
            )
            assert refused == {}
            change = await receive(ws)
            assert change["@type"] == "StateChange"
            new_state = await asyncio.to_thread(_email_state, alice)
            assert change["changed"] == {alice.account_id: {"Email": new_state}}

    asyncio.run(scenario())
