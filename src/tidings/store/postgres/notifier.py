"""The change bus's NOTIFYs, sent after the commits they announce, by one thread per store.

Why not NOTIFY inside the committing transaction
-------------------------------------------------
PostgreSQL serialises every transaction that has sent a NOTIFY, in the whole cluster: at commit it
takes one global lock (a heavyweight lock on "database 0", so that queue entries appear in commit
order) and holds it until the commit is complete, *including the WAL flush*. Writers of different
accounts, which otherwise run side by side and share their WAL flushes (group commit), would queue
on that lock one fsync after another, across every server process: measured, a third of the
delivery backends' time was spent waiting for it.

Theory of operation
-------------------
* After a write transaction has committed (durably, synchronous_commit on), the store hands its
  message (account, {type: state}) to `send`, which only queues it and wakes the thread.
* The thread takes everything queued, merges what is pending for one account (its latest state per
  type: states of an account only grow), and sends it in one round trip, as one transaction of one
  NOTIFY per account with synchronous_commit off. That transaction changes no data, only the
  notification queue: not waiting for its commit record to reach the disk loses nothing that was
  acknowledged, and the global lock is then held for microseconds instead of an fsync.
* Under load the thread falls behind by one round trip and sends bigger batches: one lock and one
  wake-up of every listening process per batch instead of per commit.
* Delivery stays best effort (RFC 8620 §7): a message queued when the process dies, or while the
  database is unreachable, is lost and clients find the change at their next /changes. Two
  processes' messages about one account may arrive out of order; a listener that hears an older
  state after a newer one makes a client ask for changes it already has, nothing worse.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import psycopg
from psycopg import sql

log = logging.getLogger("tidings.store")


def merge_states(into: dict[str, str], states: dict[str, str]) -> None:
    """Keep the latest state of each type (states are an account's change numbers, which only grow)."""
    for type_name, state in states.items():
        known = into.get(type_name)
        if known is None or int(state) > int(known):
            into[type_name] = state


class Notifier:
    def __init__(self, url: str, channel: str, origin: str) -> None:
        self.url = url
        self.channel = channel
        self.origin = origin
        self._pending: dict[str, dict[str, str]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def send(self, account_id: str, states: dict[str, str]) -> None:
        """Queue a committed change for the other processes (never blocks on the database)."""
        with self._wake:
            if self._closed:
                return
            merge_states(self._pending.setdefault(account_id, {}), states)
            if self._thread is None:
                # Started on first use: commands that never commit a change open no connection for it.
                self._thread = threading.Thread(target=self._run, name="tidings-notify", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _statement(self, batch: dict[str, dict[str, str]]) -> sql.Composed:
        notifies = [
            sql.SQL("NOTIFY {}, {};").format(
                sql.Identifier(self.channel),
                sql.Literal(orjson.dumps({"o": self.origin, "a": account_id, "s": states}).decode()),
            )
            for account_id, states in batch.items()
        ]
        # Several statements without parameters go as one simple query: one round trip.
        return sql.SQL("BEGIN; SET LOCAL synchronous_commit TO OFF; {} COMMIT").format(sql.SQL(" ").join(notifies))

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    break
                batch, self._pending = self._pending, {}
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True)
                conn.execute(self._statement(batch))
            except psycopg.Error as exc:
                log.warning("change notification for %d account(s) not sent: %s", len(batch), str(exc).strip())
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
