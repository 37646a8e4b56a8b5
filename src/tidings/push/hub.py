"""Fan-out of state changes to connected clients (EventSource now; WebSocket push builds on it).

The store calls `publish` after every commit, from whatever thread committed. Subscribers are
asyncio queues on the server's event loop, so publishing hops onto the loop thread-safely.
Each event carries a StateChange object (RFC 8620 §7.1) for one account.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Subscription:
    accounts: frozenset[str]
    types: frozenset[str] | None  # None: every type
    queue: asyncio.Queue[dict[str, dict[str, str]]] = field(default_factory=asyncio.Queue)


class Hub:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, accounts: Iterable[str], types: Iterable[str] | None) -> Subscription:
        sub = Subscription(frozenset(accounts), frozenset(types) if types is not None else None)
        with self._lock:
            self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(sub)

    def publish(self, account_id: str, states: dict[str, str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._deliver, account_id, states)
        except RuntimeError:  # the loop is shutting down
            pass

    def _deliver(self, account_id: str, states: dict[str, str]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for sub in subscriptions:
            if account_id not in sub.accounts:
                continue
            wanted = states if sub.types is None else {t: s for t, s in states.items() if t in sub.types}
            if wanted:
                sub.queue.put_nowait({account_id: wanted})

    def __len__(self) -> int:
        return len(self._subscriptions)
