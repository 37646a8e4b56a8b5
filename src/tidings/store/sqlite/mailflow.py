"""Vacation responses, the vacation reply log and the delivery duplicate log in SQLite."""

from __future__ import annotations

import sqlite3

from ..base import MailFlowLog, VacationRow


class SqliteMailFlowLog(MailFlowLog):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    def vacation(self) -> VacationRow:
        row = self.conn.execute(
            "SELECT is_enabled, from_date, to_date, subject, text_body, html_body FROM vacation_responses"
            " WHERE account_id = ?",
            (self.account_pk,),
        ).fetchone()
        if row is None:
            return VacationRow()
        return VacationRow(bool(row[0]), row[1], row[2], row[3], row[4], row[5])

    def set_vacation(self, row: VacationRow) -> None:
        self.conn.execute(
            "INSERT INTO vacation_responses (account_id, is_enabled, from_date, to_date, subject, text_body, html_body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET is_enabled = excluded.is_enabled,"
            " from_date = excluded.from_date, to_date = excluded.to_date, subject = excluded.subject,"
            " text_body = excluded.text_body, html_body = excluded.html_body",
            (self.account_pk, int(row.is_enabled), row.from_date, row.to_date, row.subject, row.text_body,
             row.html_body),
        )

    def vacation_replied_since(self, sender: str, since: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM vacation_replies WHERE account_id = ? AND sender = ? AND replied_at >= ?",
            (self.account_pk, sender, since),
        ).fetchone()
        return row is not None

    def log_vacation_reply(self, sender: str, at: int) -> None:
        self.conn.execute(
            "INSERT INTO vacation_replies (account_id, sender, replied_at) VALUES (?, ?, ?)"
            " ON CONFLICT (account_id, sender) DO UPDATE SET replied_at = excluded.replied_at",
            (self.account_pk, sender, at),
        )

    def delivered_since(self, message_id: str, target: str, since: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM delivered WHERE account_id = ? AND message_id = ? AND target = ? AND delivered_at >= ?",
            (self.account_pk, message_id, target, since),
        ).fetchone()
        return row is not None

    def log_delivery(self, message_id: str, target: str, at: int) -> None:
        self.conn.execute(
            "INSERT INTO delivered (account_id, message_id, target, delivered_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account_id, message_id, target) DO UPDATE SET delivered_at = excluded.delivered_at",
            (self.account_pk, message_id, target, at),
        )

    def forget_before(self, before: int) -> None:
        self.conn.execute("DELETE FROM delivered WHERE account_id = ? AND delivered_at < ?", (self.account_pk, before))
        self.conn.execute(
            "DELETE FROM vacation_replies WHERE account_id = ? AND replied_at < ?", (self.account_pk, before)
        )
