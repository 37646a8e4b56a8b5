"""The event-source push channel (RFC 8620 §7.3)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..push.hub import Hub
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
    raw = orjson.dumps(states, option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_event_id(value: str | None) -> dict[str, dict[str, str]] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded: Any = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(decoded, dict) or not all(isinstance(v, dict) for v in decoded.values()):
        return None
    return decoded


def _filter(states: dict[str, dict[str, str]], types: frozenset[str] | None) -> dict[str, dict[str, str]]:
    if types is None:
        return states
    return {a: {t: s for t, s in ts.items() if t in types} for a, ts in states.items()}


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
    subscription = hub.subscribe(current.keys(), args.types)
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
        known = _filter(current, args.types)
        previous = decode_event_id(last_event_id)
        if previous is not None:
            # A reconnecting client: tell it at once of whatever changed while it was away.
            missed = {
                account: {t: s for t, s in types.items() if previous.get(account, {}).get(t) != s}
                for account, types in known.items()
            }
            missed = {a: ts for a, ts in missed.items() if ts}
            if missed:
                await send_body(send, _event("state", _state_change(missed), encode_event_id(known)))
                if args.close_after_state:
                    return
        else:
            # Give the client an id to resume from, without announcing a change.
            await send_body(send, f"id: {encode_event_id(known)}\n\n".encode())
        while True:
            timeout = args.ping or None
            try:
                changed = await asyncio.wait_for(subscription.queue.get(), timeout)
            except TimeoutError:
                await send_body(send, _event("ping", {"interval": args.ping}))
                continue
            while not subscription.queue.empty():  # coalesce a burst into one event
                for account, types in subscription.queue.get_nowait().items():
                    changed.setdefault(account, {}).update(types)
            for account, types in changed.items():
                known.setdefault(account, {}).update(types)
            await send_body(send, _event("state", _state_change(changed), encode_event_id(known)))
            if args.close_after_state:
                return
    finally:
        hub.unsubscribe(subscription)


def _state_change(changed: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {"@type": "StateChange", "changed": changed}


async def send_body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
