"""Read snapshots and write transactions on one account, with the change log (see store/base.py)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ...jmap.methods import Changes
from ..base import BlobInfo, StoreError, Transaction
from .emails import SqliteEmails
from .identities import SqliteIdentities
from .mailboxes import SqliteMailboxes
from .mailflow import SqliteMailFlowLog
from .outbound import SqliteOutbound
from .submissions import SqliteSubmissions


class SqliteTransaction(Transaction):
    # A writer reads its account's change counter first (PostgreSQL locks the row with it).
    ACCOUNT_ROW = "SELECT modseq FROM accounts WHERE id = ?"

    def __init__(self, conn: sqlite3.Connection, account_pk: int, account_id: str, *, writable: bool) -> None:
        self.conn = conn
        self.account_pk = account_pk
        self.account_id = account_id
        self.writable = writable
        self.mailboxes = SqliteMailboxes(conn, account_pk)
        self.emails = SqliteEmails(conn, account_pk)
        self.identities = SqliteIdentities(conn, account_pk)
        self.submissions = SqliteSubmissions(conn, account_pk)
        self.outbound = SqliteOutbound(conn, account_pk)
        self.mailflow = SqliteMailFlowLog(conn, account_pk)
        self._savepoints = 0
        # Write bookkeeping: the account's change counter and the latest change per type.
        self.modseq = 0
        self.changed_types: dict[str, int] = {}
        if writable:
            row = conn.execute(self.ACCOUNT_ROW, (account_pk,)).fetchone()
            if row is None:
                raise StoreError(f"account {account_id} does not exist")
            self.modseq = row[0]
        self.start_modseq = self.modseq

    # -- states and changes ---------------------------------------------------------------------

    def state(self, type_name: str) -> str:
        if type_name in self.changed_types:
            return str(self.changed_types[type_name])
        row = self.conn.execute(
            "SELECT modseq FROM type_states WHERE account_id = ? AND type = ?", (self.account_pk, type_name)
        ).fetchone()
        return str(row[0]) if row else "0"

    def all_states(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT type, modseq FROM type_states WHERE account_id = ?", (self.account_pk,))
        states = {t: str(m) for t, m in rows}
        states.update({t: str(m) for t, m in self.changed_types.items()})
        return states

    def _since(self, type_name: str, since: str) -> tuple[int, int] | None:
        """(base, cut) for a state string, or None when changes cannot be computed from it.

        A plain state "N" is (N, N). An intermediate state handed out by a /changes cut short by
        maxChanges is "B-C": the client knows the account as at change B plus every object whose
        latest change is at or before C. Objects changed after C are still classified against B, so
        one created after B is reported as created even if its creation came before C (RFC 8620
        §5.2: never "updated" before the client was told it was created).
        """
        base_text, sep, cut_text = since.partition("-")
        if not sep:
            cut_text = base_text
        # ASCII digits only: str.isdigit() also accepts "١" or "²", which are no state of ours.
        for text in (base_text, cut_text):
            if not (text.isascii() and text.isdigit()) or len(text) > 18:
                return None
        base, cut = int(base_text), int(cut_text)
        row = self.conn.execute("SELECT modseq, horizon FROM accounts WHERE id = ?", (self.account_pk,)).fetchone()
        if row is None or base > cut or cut > max(row[0], self.modseq) or base < row[1]:
            return None
        return base, cut

    def changes(self, type_name: str, since: str, max_changes: int) -> Changes | None:
        found = self._since(type_name, since)
        if found is None:
            return None
        number, cut = found
        rows = self.conn.execute(
            "SELECT object_id, modseq, created_modseq, destroyed, full_modseq FROM changelog"
            " WHERE account_id = ? AND type = ? AND modseq > ? ORDER BY modseq LIMIT ?",
            (self.account_pk, type_name, cut, max_changes + 1),
        ).fetchall()
        has_more = len(rows) > max_changes
        if has_more:
            rows = rows[:max_changes]
            new_state = f"{number}-{rows[-1][1]}"
        else:
            new_state = self.state(type_name)
            if int(new_state) < cut:
                new_state = since
        created, updated, destroyed = [], [], []
        only_counts = True
        for object_id, _modseq, created_modseq, is_destroyed, full_modseq in rows:
            if is_destroyed:
                # Created and destroyed since the old state: the client never saw it (§5.2).
                if created_modseq <= number:
                    destroyed.append(object_id)
            elif created_modseq > number:
                created.append(object_id)
            else:
                updated.append(object_id)
                if full_modseq > number:
                    only_counts = False
        return Changes(created, updated, destroyed, new_state, has_more, only_counts and bool(updated))

    def changed_since(self, type_name: str, since: str) -> set[str] | None:
        found = self._since(type_name, since)
        if found is None:
            return None
        rows = self.conn.execute(
            "SELECT object_id FROM changelog WHERE account_id = ? AND type = ? AND modseq > ?",
            (self.account_pk, type_name, found[0]),
        )
        return {r[0] for r in rows}

    def record(self, type_name: str, object_id: str, kind: str, *, counts_only: bool = False) -> None:
        if not self.writable:
            raise StoreError("record() needs a write transaction")
        self.modseq += 1
        seq = self.modseq
        full = 0 if counts_only else seq
        if kind == "created":
            self.conn.execute(
                "INSERT INTO changelog (account_id, type, object_id, modseq, created_modseq, destroyed, full_modseq)"
                " VALUES (?, ?, ?, ?, ?, 0, ?)",
                (self.account_pk, type_name, object_id, seq, seq, seq),
            )
        else:
            destroyed = 1 if kind == "destroyed" else 0
            self.conn.execute(
                "INSERT INTO changelog (account_id, type, object_id, modseq, created_modseq, destroyed, full_modseq)"
                " VALUES (?, ?, ?, ?, 0, ?, ?)"
                " ON CONFLICT (account_id, type, object_id) DO UPDATE SET modseq = excluded.modseq,"
                " destroyed = excluded.destroyed, full_modseq = max(full_modseq, excluded.full_modseq)",
                (self.account_pk, type_name, object_id, seq, destroyed, full),
            )
        self.changed_types[type_name] = seq

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        saved_modseq, saved_types = self.modseq, dict(self.changed_types)
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            self.modseq, self.changed_types = saved_modseq, saved_types
            raise
        self.conn.execute(f"RELEASE {name}")

    def flush_states(self) -> dict[str, str]:
        """Write the account counter and type states; called just before COMMIT."""
        if self.modseq == self.start_modseq:
            return {}
        self.conn.execute("UPDATE accounts SET modseq = ? WHERE id = ?", (self.modseq, self.account_pk))
        self.conn.executemany(
            "INSERT INTO type_states (account_id, type, modseq) VALUES (?, ?, ?)"
            " ON CONFLICT (account_id, type) DO UPDATE SET modseq = excluded.modseq",
            [(self.account_pk, t, seq) for t, seq in self.changed_types.items()],
        )
        return {t: str(seq) for t, seq in self.changed_types.items()}

    # -- blobs ------------------------------------------------------------------------------------

    def blob(self, blob_id: str) -> BlobInfo | None:
        row = self.conn.execute(
            "SELECT type, size FROM account_blobs WHERE account_id = ? AND blob_id = ?"
            " AND (refs > 0 OR expires_at > ?)",
            (self.account_pk, blob_id, int(time.time())),
        ).fetchone()
        return BlobInfo(blob_id, row[0], row[1]) if row else None

    def add_upload(self, blob_id: str, media_type: str, size: int, expires_at: int) -> None:
        self.conn.execute(
            "INSERT INTO account_blobs (account_id, blob_id, type, size, refs, expires_at) VALUES (?, ?, ?, ?, 0, ?)"
            " ON CONFLICT (account_id, blob_id) DO UPDATE SET type = excluded.type,"
            " expires_at = max(coalesce(expires_at, 0), excluded.expires_at)",
            (self.account_pk, blob_id, media_type, size, expires_at),
        )

    def ref_blob(self, blob_id: str, media_type: str, size: int, delta: int) -> None:
        self.conn.execute(
            "INSERT INTO account_blobs (account_id, blob_id, type, size, refs, expires_at) VALUES (?, ?, ?, ?, ?, NULL)"
            " ON CONFLICT (account_id, blob_id) DO UPDATE SET refs = max(0, refs + excluded.refs)",
            (self.account_pk, blob_id, media_type, size, max(delta, 0)),
        )
        if delta < 0:
            self.conn.execute(
                "UPDATE account_blobs SET refs = max(0, refs + ?) WHERE account_id = ? AND blob_id = ?",
                (delta, self.account_pk, blob_id),
            )

    def put_inline_blob(self, blob_id: str, data: bytes) -> None:
        self.conn.execute("INSERT OR IGNORE INTO blob_data (blob_id, data) VALUES (?, ?)", (blob_id, data))
