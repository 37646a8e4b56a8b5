"""Mailbox rows in SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..base import Mailboxes, MailboxRow

_COLUMNS = (
    "id, name, parent_id, role, sort_order, is_subscribed, total_emails, unread_emails, total_threads, unread_threads"
)
_WRITABLE = {"name", "parent_id", "role", "sort_order", "is_subscribed"}


def _row(values: tuple[Any, ...]) -> MailboxRow:
    return MailboxRow(
        values[0], values[1], values[2], values[3], values[4], bool(values[5]), *values[6:10]
    )


class SqliteMailboxes(Mailboxes):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    def all(self) -> list[MailboxRow]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY id", (self.account_pk,)
        )
        return [_row(r) for r in rows]

    def get(self, mailbox_id: int) -> MailboxRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM mailboxes WHERE account_id = ? AND id = ?", (self.account_pk, mailbox_id)
        ).fetchone()
        return _row(row) if row else None

    def insert(self, row: MailboxRow) -> int:
        cur = self.conn.execute(
            # An explicit id above every id ever used: ids are never reused (RFC 8620 §1.2, migration 0005).
            "INSERT INTO mailboxes (id, account_id, name, parent_id, role, sort_order, is_subscribed)"
            " VALUES ((SELECT last_id + 1 FROM id_high_water WHERE name = 'mailboxes'), ?, ?, ?, ?, ?, ?)",
            (self.account_pk, row.name, row.parent_id, row.role, row.sort_order, int(row.is_subscribed)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update(self, mailbox_id: int, fields: dict[str, Any]) -> None:
        unknown = set(fields) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {unknown}")
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
        self.conn.execute(
            f"UPDATE mailboxes SET {assignments} WHERE account_id = ? AND id = ?",
            (*values, self.account_pk, mailbox_id),
        )

    def delete(self, mailbox_id: int) -> None:
        self.conn.execute("DELETE FROM mailboxes WHERE account_id = ? AND id = ?", (self.account_pk, mailbox_id))

    def has_children(self, mailbox_id: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM mailboxes WHERE account_id = ? AND parent_id = ? LIMIT 1", (self.account_pk, mailbox_id)
        ).fetchone()
        return row is not None
