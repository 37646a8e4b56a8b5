"""Identities (RFC 8621 §6) in SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..base import Identities, IdentityRow

_COLUMNS = "id, name, email, reply_to, bcc, text_signature, html_signature, may_delete"
_UPDATABLE = frozenset({"name", "reply_to", "bcc", "text_signature", "html_signature"})
_JSON = frozenset({"reply_to", "bcc"})


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _row(r: tuple[Any, ...]) -> IdentityRow:
    return IdentityRow(
        id=r[0],
        name=r[1],
        email=r[2],
        reply_to=orjson.loads(r[3]) if r[3] is not None else None,
        bcc=orjson.loads(r[4]) if r[4] is not None else None,
        text_signature=r[5],
        html_signature=r[6],
        may_delete=bool(r[7]),
    )


class SqliteIdentities(Identities):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    def all(self) -> list[IdentityRow]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM identities WHERE account_id = ? ORDER BY id", (self.account_pk,)
        )
        return [_row(r) for r in rows]

    def insert(self, row: IdentityRow) -> int:
        cur = self.conn.execute(
            "INSERT INTO identities (account_id, name, email, reply_to, bcc, text_signature, html_signature,"
            " may_delete) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.account_pk, row.name, row.email, _json(row.reply_to), _json(row.bcc), row.text_signature,
             row.html_signature, int(row.may_delete)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update(self, identity_id: int, fields: dict[str, Any]) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not fields:
            return
        values = [_json(v) if k in _JSON else v for k, v in fields.items()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(
            f"UPDATE identities SET {assignments} WHERE account_id = ? AND id = ?",
            (*values, self.account_pk, identity_id),
        )

    def delete(self, identity_id: int) -> None:
        self.conn.execute("DELETE FROM identities WHERE account_id = ? AND id = ?", (self.account_pk, identity_id))
