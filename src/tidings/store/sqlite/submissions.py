"""EmailSubmission records (RFC 8621 §7) in SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..base import SubmissionRow, Submissions

_COLUMNS = (
    "id, identity_id, email_id, thread_id, envelope, send_at, undo_status, delivery_status, dsn_blob_ids,"
    " mdn_blob_ids, created_at, message_id"
)
_UPDATABLE = frozenset({"undo_status", "delivery_status", "dsn_blob_ids", "mdn_blob_ids"})
_JSON = frozenset({"delivery_status", "dsn_blob_ids", "mdn_blob_ids"})


def _row(r: tuple[Any, ...]) -> SubmissionRow:
    return SubmissionRow(
        id=r[0],
        identity_id=r[1],
        email_id=r[2],
        thread_id=r[3],
        envelope=orjson.loads(r[4]),
        send_at=r[5],
        undo_status=r[6],
        delivery_status=orjson.loads(r[7]),
        dsn_blob_ids=orjson.loads(r[8]),
        mdn_blob_ids=orjson.loads(r[9]),
        created_at=r[10],
        message_id=r[11],
    )


class SqliteSubmissions(Submissions):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    def rows(self, ids: list[int] | None) -> list[SubmissionRow]:
        if ids is None:
            found = self.conn.execute(
                f"SELECT {_COLUMNS} FROM submissions WHERE account_id = ? ORDER BY id", (self.account_pk,)
            )
            return [_row(r) for r in found]
        out: list[SubmissionRow] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found = self.conn.execute(
                f"SELECT {_COLUMNS} FROM submissions WHERE account_id = ? AND id IN ({marks})",
                (self.account_pk, *chunk),
            )
            out.extend(_row(r) for r in found)
        return sorted(out, key=lambda row: row.id)

    def with_message_id(self, message_id: str) -> list[SubmissionRow]:
        found = self.conn.execute(
            f"SELECT {_COLUMNS} FROM submissions WHERE account_id = ? AND message_id = ? ORDER BY id",
            (self.account_pk, message_id),
        )
        return [_row(r) for r in found]

    def insert(self, row: SubmissionRow) -> int:
        cur = self.conn.execute(
            "INSERT INTO submissions (account_id, identity_id, email_id, thread_id, envelope, send_at, undo_status,"
            " delivery_status, dsn_blob_ids, mdn_blob_ids, created_at, message_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.account_pk,
                row.identity_id,
                row.email_id,
                row.thread_id,
                orjson.dumps(row.envelope).decode(),
                row.send_at,
                row.undo_status,
                orjson.dumps(row.delivery_status).decode(),
                orjson.dumps(row.dsn_blob_ids).decode(),
                orjson.dumps(row.mdn_blob_ids).decode(),
                row.created_at,
                row.message_id,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update(self, submission_id: int, fields: dict[str, Any]) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not fields:
            return
        values = [orjson.dumps(v).decode() if k in _JSON else v for k, v in fields.items()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(
            f"UPDATE submissions SET {assignments} WHERE account_id = ? AND id = ?",
            (*values, self.account_pk, submission_id),
        )

    def delete(self, submission_id: int) -> None:
        self.conn.execute(
            "DELETE FROM submissions WHERE account_id = ? AND id = ?", (self.account_pk, submission_id)
        )
