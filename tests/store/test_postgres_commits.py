"""How the PostgreSQL store commits: writers of different accounts do not wait for each other, and
each commit is announced to the other processes (NOTIFY) after it, never before or instead of it.

PostgreSQL only (the embedded store has one writer and no channel between processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tidings.config import load
from tidings.server import open_store
from tidings.store.base import MailboxRow, Store
from tidings.store.postgres.notifier import merge_states

from ..stores import POSTGRESQL, store_for

CHANNEL = "tidings_changes"


@pytest.fixture
def store(tmp_path: Path, store_backend: str) -> Iterator[Store]:
    if store_backend != POSTGRESQL:
        pytest.skip("commits across processes are the PostgreSQL store's")
    instance = open_store(load(None, {"data": str(tmp_path / "data"), "store": store_for(tmp_path / "data")},
                               environ={}))
    yield instance
    instance.close()


def _account(store: Store, name: str) -> str:
    with store.directory(write=True) as directory:
        return directory.add_user(name, f"{name}@example.com", "hash").account_id


def _add_mailbox(store: Store, account: str, name: str) -> str:
    with store.write(account) as tx:
        pk = tx.mailboxes.insert(MailboxRow(0, name, None, None, 0, True))
        tx.record("Mailbox", f"M{pk}", "created")
        return tx.state("Mailbox")


class Listener:
    """A connection of its own that LISTENs, as another process's change bus does."""

    def __init__(self, store: Store) -> None:
        import psycopg

        self.conn = psycopg.connect(store.url, autocommit=True)  # type: ignore[attr-defined]
        self.conn.execute(f'LISTEN "{CHANNEL}"')
        self.origin = store.origin  # type: ignore[attr-defined]

    def messages(self, account: str, until: float = 5.0, stop: int | None = None) -> list[dict[str, Any]]:
        """This store's messages about one account, until `stop` of them have come or time is up."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + until
        while time.monotonic() < deadline and (stop is None or len(found) < stop):
            for notify in self.conn.notifies(timeout=0.1, stop_after=1):
                message = orjson.loads(notify.payload)
                if message["o"] == self.origin and message["a"] == account:
                    found.append(message)
        return found

    def close(self) -> None:
        self.conn.close()


def test_a_commit_is_announced_after_it_is_visible(store: Store) -> None:
    account = _account(store, "alice")
    listener = Listener(store)
    try:
        state = _add_mailbox(store, account, "Inbox")
        [message] = listener.messages(account, stop=1)
        assert message["s"]["Mailbox"] == state
        # Whoever hears the message can read what it announces.
        with store.read(account) as tx:
            assert tx.state("Mailbox") == state
    finally:
        listener.close()


def test_a_rolled_back_write_is_not_announced(store: Store) -> None:
    account = _account(store, "alice")
    listener = Listener(store)
    try:
        with pytest.raises(RuntimeError), store.write(account) as tx:
            tx.mailboxes.insert(MailboxRow(0, "Gone", None, None, 0, True))
            tx.record("Mailbox", "M999", "created")
            raise RuntimeError("the method failed")
        state = _add_mailbox(store, account, "Inbox")
        messages = listener.messages(account, until=2.0)
        assert [m["s"]["Mailbox"] for m in messages] == [state]
    finally:
        listener.close()


def test_a_burst_of_commits_ends_with_the_latest_state(store: Store) -> None:
    account = _account(store, "alice")
    listener = Listener(store)
    try:
        for n in range(20):
            last = _add_mailbox(store, account, f"Box {n}")
        messages = listener.messages(account, until=3.0)
        # Messages may be merged (the notifier sends what is pending in one go), never lost at the end.
        assert 1 <= len(messages) <= 20
        assert messages[-1]["s"]["Mailbox"] == last
        states = [int(m["s"]["Mailbox"]) for m in messages]
        assert states == sorted(states)
    finally:
        listener.close()


def test_writers_of_different_accounts_do_not_wait_for_each_other(store: Store) -> None:
    alice, bob = _account(store, "alice"), _account(store, "bob")
    inside, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with store.write(alice) as tx:
            tx.mailboxes.insert(MailboxRow(0, "Slow", None, None, 0, True))
            tx.record("Mailbox", "M1000", "created")
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        _add_mailbox(store, bob, "Inbox")  # commits while alice's transaction is still open
        assert time.monotonic() - started < 5
        assert thread.is_alive()
    finally:
        release.set()
        thread.join(10)


def test_merged_states_keep_the_latest_of_each_type() -> None:
    pending = {"Email": "9", "Thread": "10"}
    merge_states(pending, {"Email": "12", "Thread": "8", "Mailbox": "11"})
    assert pending == {"Email": "12", "Thread": "10", "Mailbox": "11"}


def test_statements_sent_with_the_next_one_keep_transactions_exact(store: Store) -> None:
    """BEGIN, SAVEPOINT and RELEASE wait for the next statement and go with it (dialect.py): errors
    still surface at the statement that caused them, and savepoints still undo exactly their part."""
    import psycopg

    from tidings.store.postgres.dialect import PgConnection

    idle, in_transaction = psycopg.pq.TransactionStatus.IDLE, psycopg.pq.TransactionStatus.INTRANS
    with psycopg.connect(store.url, autocommit=True) as raw:  # type: ignore[attr-defined]
        conn = PgConnection(raw, frozenset(), {}, threading.Lock())
        conn.execute("BEGIN")
        conn.execute("COMMIT")  # nothing ran: nothing reached the server
        assert raw.info.transaction_status == idle
        conn.execute("BEGIN")
        conn.execute("CREATE TEMP TABLE t (x INTEGER PRIMARY KEY)")
        assert raw.info.transaction_status == in_transaction
        conn.execute("SAVEPOINT sp1")
        conn.execute("INSERT INTO t VALUES (?)", (1,))
        conn.execute("RELEASE sp1")
        conn.execute("SAVEPOINT sp2")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO t VALUES (?)", (1,))
        conn.execute("ROLLBACK TO sp2")
        conn.execute("RELEASE sp2")
        with conn.pipeline():
            conn.execute("INSERT INTO t VALUES (?)", (2,))
            conn.executemany("INSERT INTO t VALUES (?)", [(3,), (4,)])
        assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x").fetchall()] == [1, 2, 3, 4]
        with pytest.raises(psycopg.errors.DivisionByZero), conn.pipeline():
            conn.execute("SELECT 1 / ?", (0,))
            conn.execute("COMMIT")
        assert conn.in_transaction  # the failed pipeline did not commit
        conn.execute("ROLLBACK")
        assert raw.info.transaction_status == idle
