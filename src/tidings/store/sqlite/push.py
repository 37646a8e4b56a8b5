"""Push subscriptions, server keys and single-use push tokens in SQLite (see store/base.py)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from ..base import PushSubscriptionRow, PushSubscriptions, account_pk, password_credential, token_credential

_COLUMNS = (
    "id, user_id, credential, device_client_id, url, p256dh, auth, verification_code, verified, expires_at, types"
)
_UPDATABLE = frozenset({"verified", "expires_at", "types"})


def _row(row: tuple[Any, ...]) -> PushSubscriptionRow:
    return PushSubscriptionRow(
        id=row[0],
        user_id=row[1],
        credential=row[2],
        device_client_id=row[3],
        url=row[4],
        p256dh=row[5],
        auth=row[6],
        verification_code=row[7],
        verified=bool(row[8]),
        expires_at=row[9],
        types=orjson.loads(row[10]) if row[10] is not None else None,
    )


class SqlitePushSubscriptions(PushSubscriptions):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._savepoints = 0

    def of_user(self, user_id: int, now: int) -> list[PushSubscriptionRow]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM push_subscriptions WHERE user_id = ? AND expires_at > ? ORDER BY created_at, id",
            (user_id, now),
        )
        return [_row(r) for r in rows]

    def get(self, user_id: int, subscription_id: str, now: int) -> PushSubscriptionRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM push_subscriptions WHERE id = ? AND user_id = ? AND expires_at > ?",
            (subscription_id, user_id, now),
        ).fetchone()
        return _row(row) if row else None

    def count(self, user_id: int) -> int:
        row = self.conn.execute("SELECT count(*) FROM push_subscriptions WHERE user_id = ?", (user_id,)).fetchone()
        return int(row[0])

    def insert(self, row: PushSubscriptionRow, now: int) -> None:
        self.conn.execute(
            f"INSERT INTO push_subscriptions ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.user_id,
                row.credential,
                row.device_client_id,
                row.url,
                row.p256dh,
                row.auth,
                row.verification_code,
                int(row.verified),
                row.expires_at,
                orjson.dumps(row.types).decode() if row.types is not None else None,
                now,
            ),
        )

    def update(self, subscription_id: str, fields: dict[str, Any]) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        values = dict(fields)
        if "types" in values and values["types"] is not None:
            values["types"] = orjson.dumps(values["types"]).decode()
        if "verified" in values:
            values["verified"] = int(values["verified"])
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.conn.execute(
            f"UPDATE push_subscriptions SET {assignments} WHERE id = ?", (*values.values(), subscription_id)
        )

    def delete(self, subscription_id: str) -> bool:
        # RFC 8620 §7.2: erase the URL and keys "as soon as possible". Overwrite them in place, then
        # delete with secure_delete so the freed page is zeroed too (the WAL copy goes at checkpoint).
        self.conn.execute(
            "UPDATE push_subscriptions SET url = zeroblob(length(url)), p256dh = NULL, auth = NULL WHERE id = ?",
            (subscription_id,),
        )
        self.conn.execute("PRAGMA secure_delete = ON")
        try:
            cur = self.conn.execute("DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,))
        finally:
            self.conn.execute("PRAGMA secure_delete = OFF")
        return cur.rowcount > 0

    def for_account(self, account_id: str, now: int) -> list[PushSubscriptionRow]:
        pk = account_pk(account_id)
        if pk is None:
            return []
        # One account per user for now: the account's owner. Shared accounts will join their grants here.
        rows = self.conn.execute(
            f"SELECT {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))} FROM push_subscriptions p"
            " JOIN accounts a ON a.user_id = p.user_id WHERE a.id = ? AND p.verified = 1 AND p.expires_at > ?",
            (pk, now),
        )
        return [_row(r) for r in rows]

    def destroy_for_credential(self, credential: str) -> int:
        doomed = [
            r[0] for r in self.conn.execute("SELECT id FROM push_subscriptions WHERE credential = ?", (credential,))
        ]
        for subscription_id in doomed:
            self.delete(subscription_id)
        self.conn.execute("DELETE FROM access_tokens WHERE credential = ?", (credential,))
        return len(doomed)

    def destroy_all(self) -> int:
        doomed = [r[0] for r in self.conn.execute("SELECT id FROM push_subscriptions")]
        for subscription_id in doomed:
            self.delete(subscription_id)
        return len(doomed)

    def credential_is_live(self, user_id: int, credential: str) -> bool:
        if credential.startswith("password:"):
            row = self.conn.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
            return row is not None and password_credential(user_id, row[0]) == credential
        if credential.startswith("token:"):
            hashes = self.conn.execute("SELECT token_hash FROM tokens WHERE user_id = ?", (user_id,))
            return any(token_credential(h) == credential for (h,) in hashes)
        return False

    def purge_expired(self, now: int) -> int:
        expired = [r[0] for r in self.conn.execute("SELECT id FROM push_subscriptions WHERE expires_at <= ?", (now,))]
        for subscription_id in expired:
            self.delete(subscription_id)
        self.conn.execute("DELETE FROM access_tokens WHERE expires_at <= ?", (now,))
        return len(expired)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._savepoints += 1
        name = f"push{self._savepoints}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")

    # -- server keys

    def server_key(self, name: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM server_keys WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def add_server_key(self, name: str, value: bytes) -> bytes:
        self.conn.execute(
            "INSERT INTO server_keys (name, value, created_at) VALUES (?, ?, strftime('%s', 'now'))"
            " ON CONFLICT (name) DO NOTHING",
            (name, value),
        )
        stored = self.server_key(name)
        assert stored is not None
        return stored

    def replace_server_key(self, name: str, value: bytes) -> None:
        self.conn.execute(
            "INSERT INTO server_keys (name, value, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
            (name, value, int(time.time())),
        )

    # -- single-use access tokens

    def add_access_token(self, token_hash: str, user_id: int, credential: str, expires_at: int) -> None:
        self.conn.execute(
            "INSERT INTO access_tokens (token_hash, user_id, credential, expires_at) VALUES (?, ?, ?, ?)",
            (token_hash, user_id, credential, expires_at),
        )

    def redeem_access_token(self, token_hash: str, now: int) -> tuple[int, str] | None:
        row = self.conn.execute(
            "DELETE FROM access_tokens WHERE token_hash = ? RETURNING user_id, credential, expires_at", (token_hash,)
        ).fetchone()
        if row is None or row[2] <= now:
            return None
        return int(row[0]), str(row[1])
