"""Users, accounts and tokens in SQLite."""

from __future__ import annotations

import sqlite3
import time

from ..base import Directory, User, account_wire_id, password_credential, token_credential
from .push import SqlitePushSubscriptions

_USER_COLUMNS = "u.id, u.username, u.address, u.password_hash, a.id"
_USER_FROM = "users u JOIN accounts a ON a.user_id = u.id"


def _user(row: tuple[int, str, str, str, int] | None) -> User | None:
    if row is None:
        return None
    return User(row[0], row[1], row[2], row[3], account_wire_id(row[4]))


class SqliteDirectory(Directory):
    # Erases push subscriptions in this backend's way (SQLite's secure_delete; PostgreSQL overrides).
    push_repository: type[SqlitePushSubscriptions] = SqlitePushSubscriptions

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add_user(self, username: str, address: str, password_hash: str) -> User:
        cur = self.conn.execute(
            "INSERT INTO users (username, address, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, address, password_hash, int(time.time())),
        )
        user_id = cur.lastrowid
        self.conn.execute("INSERT INTO accounts (user_id, name) VALUES (?, ?)", (user_id, address))
        user = self.user(username)
        assert user is not None
        return user

    def user(self, username: str) -> User | None:
        row = self.conn.execute(
            f"SELECT {_USER_COLUMNS} FROM {_USER_FROM} WHERE u.username = ?", (username,)
        ).fetchone()
        return _user(row)

    def user_by_id(self, user_id: int) -> User | None:
        row = self.conn.execute(f"SELECT {_USER_COLUMNS} FROM {_USER_FROM} WHERE u.id = ?", (user_id,)).fetchone()
        return _user(row)

    def users(self) -> list[User]:
        rows = self.conn.execute(f"SELECT {_USER_COLUMNS} FROM {_USER_FROM} ORDER BY u.username").fetchall()
        return [u for u in map(_user, rows) if u is not None]

    def set_password(self, username: str, password_hash: str) -> bool:
        row = self.conn.execute("SELECT id, password_hash FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            return False
        # RFC 8620 §7.2: the old password is revoked, so what it subscribed goes with it.
        self.push_repository(self.conn).destroy_for_credential(password_credential(row[0], row[1]))
        self.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, row[0]))
        return True

    def remove_user(self, username: str) -> bool:
        row = self.conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            return False
        # The cascade would drop the rows; erase their URLs and keys properly first (RFC 8620 §7.2).
        push = self.push_repository(self.conn)
        for (subscription_id,) in self.conn.execute(
            "SELECT id FROM push_subscriptions WHERE user_id = ?", (row[0],)
        ).fetchall():
            push.delete(subscription_id)
        cur = self.conn.execute("DELETE FROM users WHERE id = ?", (row[0],))
        return cur.rowcount > 0

    def add_token(self, user_id: int, token_hash: str, label: str) -> None:
        self.conn.execute(
            "INSERT INTO tokens (token_hash, user_id, label, created_at) VALUES (?, ?, ?, ?)",
            (token_hash, user_id, label, int(time.time())),
        )

    def revoke_token(self, user_id: int, label: str) -> int:
        revoked = self.conn.execute(
            "DELETE FROM tokens WHERE user_id = ? AND label = ? RETURNING token_hash", (user_id, label)
        ).fetchall()
        push = self.push_repository(self.conn)
        for (token_hash,) in revoked:
            # RFC 8620 §7.2: "Should these credentials ... be revoked, the push subscription MUST be destroyed".
            push.destroy_for_credential(token_credential(token_hash))
        return len(revoked)

    def tokens(self, user_id: int) -> list[tuple[str, int]]:
        return [
            (label, created)
            for label, created in self.conn.execute(
                "SELECT label, created_at FROM tokens WHERE user_id = ? ORDER BY created_at", (user_id,)
            )
        ]

    def user_for_token(self, token_hash: str) -> User | None:
        row = self.conn.execute(
            f"SELECT {_USER_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id JOIN accounts a ON a.user_id = u.id"
            " WHERE t.token_hash = ?",
            (token_hash,),
        ).fetchone()
        return _user(row)

    def user_by_address(self, address: str) -> User | None:
        row = self.conn.execute(
            f"SELECT {_USER_COLUMNS} FROM {_USER_FROM} WHERE lower(u.address) = lower(?) ORDER BY u.id LIMIT 1",
            (address,),
        ).fetchone()
        return _user(row)
