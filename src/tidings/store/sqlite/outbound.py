"""The outbound queue in SQLite: per-account entries and the cross-account lease (see store/base.py)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..base import Outbound, OutboundQueue, QueueEntry, account_wire_id

_COLUMNS = (
    "id, account_id, submission_id, blob_id, mail_from, recipients, created_at, due_at, expires_at, attempts,"
    " last_error, parameters"
)


def _entry(r: tuple[Any, ...]) -> QueueEntry:
    return QueueEntry(
        id=r[0],
        account_id=account_wire_id(r[1]),
        submission_id=r[2],
        blob_id=r[3],
        mail_from=r[4],
        recipients=orjson.loads(r[5]),
        created_at=r[6],
        due_at=r[7],
        expires_at=r[8],
        attempts=r[9],
        last_error=r[10],
        parameters=orjson.loads(r[11]) if r[11] else None,
    )


class SqliteOutbound(Outbound):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    def enqueue(self, entry: QueueEntry) -> int:
        cur = self.conn.execute(
            "INSERT INTO outbound_queue (account_id, submission_id, blob_id, mail_from, recipients, created_at,"
            " due_at, expires_at, attempts, last_error, parameters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.account_pk,
                entry.submission_id,
                entry.blob_id,
                entry.mail_from,
                orjson.dumps(entry.recipients).decode(),
                entry.created_at,
                entry.due_at,
                entry.expires_at,
                entry.attempts,
                entry.last_error,
                orjson.dumps(entry.parameters).decode() if entry.parameters else None,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def get(self, entry_id: int) -> QueueEntry | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM outbound_queue WHERE account_id = ? AND id = ?", (self.account_pk, entry_id)
        ).fetchone()
        return _entry(row) if row else None

    def reschedule(
        self, entry_id: int, recipients: list[list[str]], due_at: float, attempts: int, last_error: str | None
    ) -> None:
        self.conn.execute(
            "UPDATE outbound_queue SET recipients = ?, due_at = ?, attempts = ?, last_error = ?, lease_owner = NULL,"
            " lease_until = NULL WHERE account_id = ? AND id = ?",
            (orjson.dumps(recipients).decode(), due_at, attempts, last_error, self.account_pk, entry_id),
        )

    def delete(self, entry_id: int) -> None:
        self.conn.execute("DELETE FROM outbound_queue WHERE account_id = ? AND id = ?", (self.account_pk, entry_id))

    def cancel(self, submission_id: int, now: float) -> bool:
        cur = self.conn.execute(
            "DELETE FROM outbound_queue WHERE account_id = ? AND submission_id = ? AND attempts = 0"
            " AND (lease_until IS NULL OR lease_until < ?)",
            (self.account_pk, submission_id, now),
        )
        return cur.rowcount > 0


class SqliteOutboundQueue(OutboundQueue):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def claim(self, owner: str, now: float, lease_until: float, limit: int) -> list[QueueEntry]:
        # One statement under the write lock: the lease is taken atomically (store/base.py).
        rows = self.conn.execute(
            f"UPDATE outbound_queue SET lease_owner = ?, lease_until = ? WHERE id IN ("
            " SELECT id FROM outbound_queue WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
            " ORDER BY due_at LIMIT ?)"
            f" RETURNING {_COLUMNS}",
            (owner, lease_until, now, now, limit),
        ).fetchall()
        return sorted((_entry(r) for r in rows), key=lambda e: (e.due_at, e.id))

    def release(self, owner: str) -> int:
        cur = self.conn.execute(
            "UPDATE outbound_queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,)
        )
        return cur.rowcount

    def next_due(self) -> float | None:
        row = self.conn.execute(
            "SELECT min(coalesce(max(due_at, lease_until), due_at)) FROM outbound_queue"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None
