"""The change bus: how news of committed state changes travels from the writer to every consumer.

Theory of operation
-------------------
* Every durable commit produces one message: (account id, {type name: new state}). The store's commit
  listener hands it to `ChangeBus.publish`, from whatever thread committed (an API worker, mail
  delivery, the outbound queue).
* Consumers (`subscribe`) hear every message published by any process that shares the bus: the hub of
  connected EventSource and WebSocket clients, and the Web Push sender. A listener is called on a
  thread of the bus's choosing, so it must only hand the message on (e.g. with
  `loop.call_soon_threadsafe`), never block.
* A message is *local* in the process that published it. A consumer that must act exactly once per
  change across all processes (the Web Push sender) subscribes with `local_only=True`: each process
  then acts on the changes it committed itself, and together they cover every change exactly once
  without electing a leader.
* Delivery is best effort (RFC 8620 §7: "It doesn't matter if some push events are dropped"): a client
  that misses a message still finds the change the next time it asks for /changes.

`LocalBus` connects the consumers of one process. A bus spanning processes and machines (PostgreSQL
LISTEN/NOTIFY) implements the same two calls; nothing that consumes the bus changes.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

log = logging.getLogger("tidings.push")

ChangeListener = Callable[[str, dict[str, str]], None]


class ChangeBus(ABC):
    @abstractmethod
    def publish(self, account_id: str, states: dict[str, str]) -> None:
        """Announce new states of an account's types; called after the commit is durable."""

    @abstractmethod
    def subscribe(self, listener: ChangeListener, *, local_only: bool = False) -> None:
        """Hear every message (or, with `local_only`, those published by this process)."""

    def close(self) -> None:  # noqa: B027 - most buses hold nothing to close
        """Stop listening (a bus with a connection of its own closes it here)."""


class LocalBus(ChangeBus):
    """The in-process bus: publish calls every listener at once, on the publishing thread."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()

    def publish(self, account_id: str, states: dict[str, str]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(account_id, states)
            except Exception:  # one broken consumer must not stop the others, nor fail the commit
                log.exception("change listener failed")

    def subscribe(self, listener: ChangeListener, *, local_only: bool = False) -> None:
        # Every message of this bus is local, so local_only makes no difference here.
        with self._lock:
            self._listeners.append(listener)
