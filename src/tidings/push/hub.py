"""Fan-out of state changes to the clients connected to this process (EventSource and WebSocket).

The hub listens to the change bus (`publish`, called from any thread) and hops onto the server's event
loop; there it calls the `notify` of every connection subscribed to the account, with the states of
the types that connection asked for. Connections are indexed by account, so a change costs in
proportion to the clients of that account, not to every client. Each connection keeps only a small
record here (`Subscription`); what it does with a notification (merge it into the next event) is its
own business.

Each event carries the content of a StateChange object (RFC 8620 §7.1) for one account. A "push state"
(the EventSource event id of §7.3, the WebSocket pushState of RFC 8887 §4.3.5) encodes every state the
client was told of, so a reconnecting client can be told at once of what changed while it was away.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

import orjson

Notify = Callable[[str, dict[str, str]], None]


class Subscription:
    __slots__ = ("accounts", "notify", "types")

    def __init__(self, accounts: frozenset[str], types: frozenset[str] | None, notify: Notify) -> None:
        self.accounts = accounts
        self.types = types  # None: every type
        self.notify = notify


class Hub:
    def __init__(self) -> None:
        self._by_account: dict[str, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._count = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # subscribe/unsubscribe run on the event loop, like every delivery: no lock is needed.
    def subscribe(self, accounts: Iterable[str], types: Iterable[str] | None, notify: Notify) -> Subscription:
        sub = Subscription(frozenset(accounts), frozenset(types) if types is not None else None, notify)
        for account in sub.accounts:
            self._by_account.setdefault(account, set()).add(sub)
        self._count += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        removed = False
        for account in sub.accounts:
            subs = self._by_account.get(account)
            if subs is not None and sub in subs:
                subs.discard(sub)
                removed = True
                if not subs:
                    del self._by_account[account]
        if removed:
            self._count -= 1

    def publish(self, account_id: str, states: dict[str, str]) -> None:
        """Change-bus listener (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, account_id, states)
        except RuntimeError:  # the loop is shutting down
            pass

    def _deliver(self, account_id: str, states: dict[str, str]) -> None:
        for sub in list(self._by_account.get(account_id, ())):
            wanted = states if sub.types is None else {t: s for t, s in states.items() if t in sub.types}
            if wanted:
                sub.notify(account_id, wanted)

    def __len__(self) -> int:
        return self._count


def filter_types(states: dict[str, dict[str, str]], types: frozenset[str] | None) -> dict[str, dict[str, str]]:
    if types is None:
        return states
    return {a: {t: s for t, s in ts.items() if t in types} for a, ts in states.items()}


def missed_changes(known: dict[str, dict[str, str]], previous: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The states in `known` that differ from those a client was last told of."""
    missed = {
        account: {t: s for t, s in types.items() if previous.get(account, {}).get(t) != s}
        for account, types in known.items()
    }
    return {a: ts for a, ts in missed.items() if ts}


def encode_push_state(states: dict[str, dict[str, str]]) -> str:
    raw = orjson.dumps(states, option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_push_state(value: str | None) -> dict[str, dict[str, str]] | None:
    if not value or len(value) > 65536:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded: Any = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(decoded, dict) or not all(
        isinstance(v, dict) and all(isinstance(s, str) for s in v.values()) for v in decoded.values()
    ):
        return None
    return decoded


def state_change(changed: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {"@type": "StateChange", "changed": changed}
