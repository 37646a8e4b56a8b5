"""Migration 0007 (push subscriptions tied to credentials) on a store that already has subscriptions:
they cannot be attributed to a credential, so they are erased; everything else stays."""

from __future__ import annotations

import time
from pathlib import Path

from tidings.config import load
from tidings.server import open_store
from tidings.store.base import PushSubscriptionRow
from tidings.store.postgres import connection as pg_connection
from tidings.store.sqlite import connection as sqlite_connection

from ..stores import POSTGRESQL, store_for

ROWS = [
    "INSERT INTO users (id, username, address, password_hash, created_at) VALUES (1, 'alice', 'a@x', 'h', 0)",
    "INSERT INTO accounts (id, user_id, name) VALUES (1, 1, 'a@x')",
    "INSERT INTO push_subscriptions (id, user_id, device_client_id, url, verification_code, verified,"
    " expires_at, created_at) VALUES ('Pold', 1, 'dev', 'https://push.example/secret', 'c', 1, 4000000000, 0)",
]


def _version_6(data: Path, backend: str) -> str:
    """A store at schema version 6 holding one user and one verified push subscription."""
    url = store_for(data)
    if backend == POSTGRESQL:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ"
                         " NOT NULL DEFAULT now())")
            for number, script in pg_connection.migrations():
                if number <= 6:
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            for statement in ROWS:
                conn.execute(statement.encode())
    else:
        import sqlite3

        data.mkdir(parents=True)
        conn = sqlite3.connect(data / "tidings.sqlite3", isolation_level=None)
        for number, script in sqlite_connection.migrations():
            if number <= 6:
                for statement in sqlite_connection._split(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        for statement in ROWS:
            conn.execute(statement)
        conn.close()
    return url


def test_subscriptions_from_before_are_erased_and_new_ones_carry_their_credential(
    tmp_path: Path, store_backend: str
) -> None:
    data = tmp_path / "data"
    url = _version_6(data, store_backend)
    store = open_store(load(None, {"data": str(data), "store": url}, environ={}), upgrade=True)
    try:
        now = int(time.time())
        with store.push() as tx:
            assert tx.count(1) == 0 and tx.get(1, "Pold", now) is None
        with store.directory() as directory:
            user = directory.user("alice")
            assert user is not None and user.account_id == "A1"
        row = PushSubscriptionRow(
            id="Pnew", user_id=1, credential="token:abc", device_client_id="dev", url="https://push.example/n",
            p256dh=None, auth=None, verification_code="c", verified=True, expires_at=now + 60, types=None,
        )
        with store.push(write=True) as tx:
            tx.insert(row, now)
            tx.add_access_token("digest", 1, "token:abc", now + 60)
        with store.push(write=True) as tx:
            assert tx.get(1, "Pnew", now) == row
            assert tx.redeem_access_token("digest", now) == (1, "token:abc")
            assert tx.destroy_for_credential("token:abc") == 1
            assert tx.count(1) == 0
    finally:
        store.close()
