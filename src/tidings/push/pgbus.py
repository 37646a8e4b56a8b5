"""The change bus across processes and machines: PostgreSQL LISTEN/NOTIFY (see push/bus.py).

The PostgreSQL store announces every commit with a NOTIFY sent just after it (store/postgres/notifier.py;
several may share one transaction), on `CHANGES_CHANNEL` with {"o": origin, "a": account, "s": states}.
Each process keeps one dedicated connection that LISTENs there, on a thread of its own, and hands
every message from another origin to its consumers; the process's own commits reach them through
`publish` at once, as with `LocalBus`, and are skipped when they come back from the database.

If the listening connection drops, the thread reconnects; messages sent meanwhile are lost, which
push allows (RFC 8620 §7): clients find the changes at their next /changes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import psycopg

from ..store.postgres import CHANGES_CHANNEL
from .bus import ChangeBus, ChangeListener, LocalBus

log = logging.getLogger("tidings.push")


class PostgresBus(ChangeBus):
    def __init__(self, url: str, origin: str, *, channel: str = CHANGES_CHANNEL, ready_timeout: float = 10.0) -> None:
        self.url = url
        self.origin = origin
        self.channel = channel
        self._local = LocalBus()
        self._remote = LocalBus()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="tidings-listen", daemon=True)
        self._thread.start()
        # Subscribers must not miss what other processes commit after the server has started.
        if not self._ready.wait(ready_timeout):
            log.warning("the change bus is not listening yet (PostgreSQL unreachable?)")

    def publish(self, account_id: str, states: dict[str, str]) -> None:
        self._local.publish(account_id, states)

    def subscribe(self, listener: ChangeListener, *, local_only: bool = False) -> None:
        self._local.subscribe(listener)
        if not local_only:
            self._remote.subscribe(listener)

    def _deliver(self, payload: str) -> None:
        try:
            message: Any = orjson.loads(payload)
            origin, account_id, states = message["o"], message["a"], message["s"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignoring a malformed change notification")
            return
        if origin != self.origin and isinstance(states, dict):
            self._remote.publish(account_id, states)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._ready.set()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            self._deliver(notify.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("change bus connection lost (%s); reconnecting", str(exc).strip())
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
