"""The embedded store: SQLite (WAL) for metadata and content-addressed files for blobs."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..base import Directory, OutboundQueue, PushSubscriptions, Store, StoreError, account_pk
from ..blobs import FileBlobStore
from .connection import LATEST, connect, migrate, schema_version
from .directory import SqliteDirectory
from .outbound import SqliteOutboundQueue
from .push import SqlitePushSubscriptions
from .transaction import SqliteTransaction

__all__ = ["SqliteStore"]


class SqliteStore(Store):
    """One database file, one connection per thread; writers serialise on SQLite's write lock."""

    def __init__(self, data_dir: Path, *, synchronous: str = "FULL", fsync_blobs: bool = True) -> None:
        super().__init__()
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "tidings.sqlite3"
        self.synchronous = synchronous
        self.blobs = FileBlobStore(data_dir / "blobs", fsync=fsync_blobs, inline=self._inline_blob)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        migrate(self._conn())

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self.synchronous)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def schema_version(self) -> int:
        return schema_version(self._conn())

    def _inline_blob(self, blob_id: str) -> bytes | None:
        """A blob kept in the database (store/blobs.py), read on this thread's connection: inside
        its running transaction if there is one, so a blob written by it is seen."""
        row = self._conn().execute("SELECT data FROM blob_data WHERE blob_id = ?", (blob_id,)).fetchone()
        return bytes(row[0]) if row else None

    @staticmethod
    def latest_schema() -> int:
        return LATEST

    def account_exists(self, account_id: str) -> bool:
        pk = account_pk(account_id)
        if pk is None:
            return False
        return self._conn().execute("SELECT 1 FROM accounts WHERE id = ?", (pk,)).fetchone() is not None

    @contextmanager
    def read(self, account_id: str) -> Iterator[SqliteTransaction]:
        conn = self._conn()
        active: SqliteTransaction | None = getattr(self._local, "active", None)
        if active is not None:
            # A read inside a running transaction on this thread sees that transaction's data.
            yield SqliteTransaction(conn, self._account(account_id), account_id, writable=False)
            return
        conn.execute("BEGIN")
        tx = SqliteTransaction(conn, self._account(account_id), account_id, writable=False)
        self._local.active = tx
        try:
            yield tx
        finally:
            self._local.active = None
            conn.execute("COMMIT")

    @contextmanager
    def write(self, account_id: str) -> Iterator[SqliteTransaction]:
        conn = self._conn()
        if getattr(self._local, "active", None) is not None:
            raise StoreError("nested write transaction")
        # IMMEDIATE takes the write lock now, so the state read below cannot go stale (ifInState).
        conn.execute("BEGIN IMMEDIATE")
        try:
            tx = SqliteTransaction(conn, self._account(account_id), account_id, writable=True)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._local.active = tx
        try:
            yield tx
            states = tx.flush_states()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self._local.active = None
        if states:
            self._notify(account_id, states)

    @contextmanager
    def directory(self, *, write: bool = False) -> Iterator[Directory]:
        conn = self._conn()
        if not write and getattr(self._local, "active", None) is not None:
            # A lookup inside a running account transaction on this thread reads in that transaction.
            yield SqliteDirectory(conn)
            return
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield SqliteDirectory(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def push(self, *, write: bool = False) -> Iterator[PushSubscriptions]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield SqlitePushSubscriptions(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def outbound_queue(self) -> Iterator[OutboundQueue]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield SqliteOutboundQueue(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def collect_garbage(self, now: int | None = None) -> int:
        now = int(time.time()) if now is None else now
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            expired = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT blob_id FROM account_blobs WHERE refs = 0"
                    " AND (expires_at IS NULL OR expires_at <= ?)",
                    (now,),
                )
            ]
            conn.execute(
                "DELETE FROM account_blobs WHERE refs = 0 AND (expires_at IS NULL OR expires_at <= ?)", (now,)
            )
            unreferenced = [
                b
                for b in expired
                if conn.execute("SELECT 1 FROM account_blobs WHERE blob_id = ? LIMIT 1", (b,)).fetchone() is None
                and not self._blob_in_use(conn, b)
            ]
            # Blobs kept in the database go in this transaction; files after it has committed.
            conn.executemany("DELETE FROM blob_data WHERE blob_id = ?", [(b,) for b in unreferenced])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for blob_id in unreferenced:
            self.blobs.delete(blob_id)
        self.blobs.sweep_temporary()
        return len(unreferenced)

    def _blob_in_use(self, conn: sqlite3.Connection, blob_id: str) -> bool:
        """Hook for tables that keep blobs alive without an account_blobs row (none yet)."""
        return False

    def close(self) -> None:
        self.closed = True
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

