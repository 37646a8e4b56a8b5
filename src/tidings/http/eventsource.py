"""The event-source push channel (RFC 8620 §7.3)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..push.hub import Hub, decode_push_state, encode_push_state, filter_types, missed_changes, state_change
from .asgi import Headers, Send

MIN_PING = 5
MAX_PING = 3600  # §7.3: the minimum may not exceed 30 s nor the maximum be under 300 s


class EventSourceArgs:
    def __init__(self, types: frozenset[str] | None, close_after_state: bool, ping: int) -> None:
        self.types = types
        self.close_after_state = close_after_state
        self.ping = ping


def parse_args(query_string: str) -> EventSourceArgs | str:
    """The query of an eventSourceUrl, or a description of what is wrong with it."""
    query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    raw_types = query.get("types", "*")
    types = None if raw_types in ("*", "") else frozenset(t for t in raw_types.split(",") if t)
    closeafter = query.get("closeafter", "no")
    if closeafter not in ("state", "no"):
        return "closeafter must be 'state' or 'no'"
    raw_ping = query.get("ping", "0") or "0"
    if not raw_ping.isdigit() or len(raw_ping) > 9:
        return "ping must be a non-negative integer"
    ping = int(raw_ping)
    if ping:
        ping = min(max(ping, MIN_PING), MAX_PING)
    return EventSourceArgs(types, closeafter == "state", ping)


def encode_event_id(states: dict[str, dict[str, str]]) -> str:
    """An event id that encodes every state the client was told of (§7.3), so a reconnect can resume."""
    return encode_push_state(states)


def decode_event_id(value: str | None) -> dict[str, dict[str, str]] | None:
    return decode_push_state(value)


def _event(name: str, data: Any, event_id: str | None = None) -> bytes:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + orjson.dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()


async def stream(
    send: Send,
    hub: Hub,
    args: EventSourceArgs,
    current: dict[str, dict[str, str]],
    last_event_id: str | None,
    extra_headers: Headers,
) -> None:
    """Serve one event-source connection until the client goes away (or after a state, if asked)."""
    # Per connection: the hub's record, the states not yet sent and one event to wake on.
    pending: dict[str, dict[str, str]] = {}
    wake = asyncio.Event()

    def notify(account_id: str, states: dict[str, str]) -> None:
        pending.setdefault(account_id, {}).update(states)
        wake.set()

    subscription = hub.subscribe(current.keys(), args.types, notify)
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache, no-store"),
                    (b"x-accel-buffering", b"no"),
                    *extra_headers,
                ],
            }
        )
        known = filter_types(current, args.types)
        previous = decode_event_id(last_event_id)
        if previous is not None:
            # A reconnecting client: tell it at once of whatever changed while it was away (§7.3).
            missed = missed_changes(known, previous)
            if missed:
                await send_body(send, _event("state", state_change(missed), encode_event_id(known)))
                if args.close_after_state:
                    return
        else:
            # Give the client an id to resume from, without announcing a change.
            await send_body(send, f"id: {encode_event_id(known)}\n\n".encode())
        while True:
            try:
                # §7.3: a ping "whenever this time elapses since the previous event was sent".
                await asyncio.wait_for(wake.wait(), args.ping or None)
            except TimeoutError:
                # The interval actually used, which may be clamped from the one asked for.
                await send_body(send, _event("ping", {"interval": args.ping}))
                continue
            wake.clear()
            changed, pending = pending, {}
            for account, types in changed.items():
                known.setdefault(account, {}).update(types)
            await send_body(send, _event("state", state_change(changed), encode_event_id(known)))
            if args.close_after_state:
                return
    finally:
        hub.unsubscribe(subscription)


async def send_body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
