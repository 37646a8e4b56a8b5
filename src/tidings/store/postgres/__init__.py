"""The PostgreSQL store: metadata in PostgreSQL, blobs in a (shared) blob directory.

Many server processes, on one machine or several, share one database:

* Writers of an account serialise on its row in `accounts` (see `PgTransaction`); readers work on a
  REPEATABLE READ snapshot and never wait.
* Every commit that changes states is announced with a NOTIFY on `CHANGES_CHANNEL`, sent after the
  commit by the store's notifier thread (notifier.py: a NOTIFY inside the commit would serialise the
  commits of every account in the cluster); every process LISTENs (push/pgbus.py) and tells its own
  push clients. The payload is JSON: {"o": origin, "a": account id, "s": {type: state}},
  where origin identifies the store instance that committed (it already told its own listeners).
* Blobs are content-addressed files (store/blobs.py) under a directory every process can reach (on
  several machines: a shared file system); their metadata (who may read what) is in the database.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg_pool import ConnectionPool

from ..base import Directory, OutboundQueue, PushSubscriptions, Store, StoreError, account_pk
from ..blobs import FileBlobStore
from .connection import LATEST, check_version, generated_id_tables, migrate, schema_version
from .dialect import PgConnection
from .notifier import Notifier
from .repositories import PgDirectory, PgOutboundQueue, PgPushSubscriptions
from .transaction import PgTransaction

__all__ = ["CHANGES_CHANNEL", "PgStore"]

CHANGES_CHANNEL = "tidings_changes"
# Directory and push writes are rare; like SQLite's write lock, they run one at a time.
_ADMIN_LOCK = 0x7469_6469_6E67_0002


class PgStore(Store):
    def __init__(
        self,
        url: str,
        blob_dir: Path,
        *,
        fsync_blobs: bool = True,
        pool_size: int = 20,
        upgrade: bool = False,
    ) -> None:
        super().__init__()
        self.url = url
        self.origin = secrets.token_hex(8)
        self.blobs = FileBlobStore(blob_dir, fsync=fsync_blobs, inline=self._inline_blob)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn, upgrade=upgrade)
                self._id_tables = generated_id_tables(conn)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=True, name="tidings"
        )
        self._cache: dict[tuple[str, bool], tuple[str, bool]] = {}
        self._cache_lock = threading.Lock()
        self._local = threading.local()
        self.notifier = Notifier(url, CHANGES_CHANNEL, self.origin)

    @contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        with self.pool.connection() as raw:
            yield PgConnection(raw, self._id_tables, self._cache, self._cache_lock)

    @contextmanager
    def _transaction(self, begin: str, *statements: tuple[str, tuple[Any, ...]]) -> Iterator[PgConnection]:
        with self._connection() as conn:
            conn.execute(begin)
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._connection() as conn:
            return schema_version(conn.raw)

    def _inline_blob(self, blob_id: str) -> bytes | None:
        """A blob kept in the database (store/blobs.py): read in this thread's running transaction
        if there is one (it may have written the blob), else on a connection from the pool."""
        query = "SELECT data FROM blob_data WHERE blob_id = ?"
        active: PgConnection | None = getattr(self._local, "active", None)
        if active is not None:
            row = active.execute(query, (blob_id,)).fetchone()
        else:
            with self._connection() as conn:
                row = conn.execute(query, (blob_id,)).fetchone()
        return bytes(row[0]) if row else None

    @staticmethod
    def latest_schema() -> int:
        return LATEST

    def account_exists(self, account_id: str) -> bool:
        pk = account_pk(account_id)
        if pk is None:
            return False
        with self._connection() as conn:
            return conn.execute("SELECT 1 FROM accounts WHERE id = ?", (pk,)).fetchone() is not None

    @contextmanager
    def read(self, account_id: str) -> Iterator[PgTransaction]:
        active: PgConnection | None = getattr(self._local, "active", None)
        if active is not None:
            # A read inside a running transaction on this thread sees that transaction's data.
            yield PgTransaction(active, self._account(account_id), account_id, writable=False)
            return
        pk = self._account(account_id)
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ") as conn:
            self._local.active = conn
            try:
                yield PgTransaction(conn, pk, account_id, writable=False)
            finally:
                self._local.active = None

    @contextmanager
    def write(self, account_id: str) -> Iterator[PgTransaction]:
        if getattr(self._local, "active", None) is not None:
            raise StoreError("nested write transaction")
        pk = self._account(account_id)
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                tx = PgTransaction(conn, pk, account_id, writable=True)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._local.active = conn
            try:
                yield tx
                # The account counter, the type states and COMMIT: one round trip.
                with conn.pipeline():
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
            self.notifier.send(account_id, states)

    def _admin(self, write: bool) -> Any:
        if write:
            return self._transaction("BEGIN", ("SELECT pg_advisory_xact_lock(?)", (_ADMIN_LOCK,)))
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ")

    @contextmanager
    def directory(self, *, write: bool = False) -> Iterator[Directory]:
        with self._admin(write) as conn:
            yield PgDirectory(cast("sqlite3.Connection", conn))

    @contextmanager
    def push(self, *, write: bool = False) -> Iterator[PushSubscriptions]:
        with self._admin(write) as conn:
            yield PgPushSubscriptions(cast("sqlite3.Connection", conn))

    @contextmanager
    def outbound_queue(self) -> Iterator[OutboundQueue]:
        with self._transaction("BEGIN") as conn:
            yield PgOutboundQueue(cast("sqlite3.Connection", conn))

    def collect_garbage(self, now: int | None = None) -> int:
        now = int(time.time()) if now is None else now
        with self._transaction("BEGIN", ("SELECT pg_advisory_xact_lock(?)", (_ADMIN_LOCK,))) as conn:
            expired = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM account_blobs WHERE refs = 0 AND (expires_at IS NULL OR expires_at <= ?)"
                    " RETURNING blob_id",
                    (now,),
                )
            ]
            unreferenced = [
                b
                for b in sorted(set(expired))
                if conn.execute("SELECT 1 FROM account_blobs WHERE blob_id = ? LIMIT 1", (b,)).fetchone() is None
            ]
            # Blobs kept in the database go in this transaction; files after it has committed.
            conn.executemany("DELETE FROM blob_data WHERE blob_id = ?", [(b,) for b in unreferenced])
        for blob_id in unreferenced:
            self.blobs.delete(blob_id)
        self.blobs.sweep_temporary()
        return len(unreferenced)

    def close(self) -> None:
        self.closed = True
        self.notifier.close()
        self.pool.close()


def check_schema(url: str) -> tuple[int, int]:
    """(the database's schema version, this Tidings's), raising SchemaTooNew when it is newer."""
    with psycopg.connect(url, autocommit=True) as conn:
        current = schema_version(conn)
    check_version(current)
    return current, LATEST
