"""Transactions on PostgreSQL: SQLite's change-log bookkeeping over the shared SQL (dialect.py)."""

from __future__ import annotations

import sqlite3
from typing import cast

from ..sqlite.transaction import SqliteTransaction
from .dialect import PgConnection
from .emails import PgEmails


class PgTransaction(SqliteTransaction):
    """A snapshot (REPEATABLE READ) or a write transaction (READ COMMITTED, the account row locked).

    A writer locks its account's row (`SELECT ... FOR UPDATE`, its first statement, sent with BEGIN)
    before reading anything, so writers of one account run one after the other, each seeing
    everything its predecessors committed: the change counter is exact and ifInState is checked
    against a state no one else can change.
    """

    ACCOUNT_ROW = "SELECT modseq FROM accounts WHERE id = ? FOR UPDATE"

    def __init__(self, conn: PgConnection, account_pk: int, account_id: str, *, writable: bool) -> None:
        # The repositories take the connection as SQLite's: PgConnection offers the same calls.
        super().__init__(cast("sqlite3.Connection", conn), account_pk, account_id, writable=writable)
        self.emails = PgEmails(cast("sqlite3.Connection", conn), account_pk)
