"""PostgreSQL connections: the store URL, the schema version and the numbered migrations."""

from __future__ import annotations

from typing import Any

import psycopg

from ..base import SchemaTooNew, StoreError
from ..sqlite import connection as sqlite_connection

# Any number: every process that migrates takes this transaction-scoped advisory lock first.
MIGRATION_LOCK = 0x7469_6469_6E67_0001


def migrations() -> list[tuple[int, str]]:
    """The numbered .sql files of this backend, one-to-one with SQLite's."""
    return sqlite_connection.migrations(__package__)


LATEST = max(number for number, _ in migrations())


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    version = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(version[0] or 0) if version else 0


def check_version(current: int) -> None:
    if current > LATEST:
        raise SchemaTooNew(
            f"The database schema is version {current}, newer than this Tidings ({LATEST}): upgrade Tidings."
        )


def migrate(conn: psycopg.Connection[Any], *, upgrade: bool = True) -> list[int]:
    """Bring the schema up to date in one transaction (DDL is transactional in PostgreSQL).

    With `upgrade` False only an empty database is initialised; an older schema is an error, so that
    upgrading a database shared by several servers is a deliberate step (`tidings db migrate`).
    """
    applied: list[int] = []
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = schema_version(conn)
        check_version(current)
        if current and current < LATEST and not upgrade:
            raise StoreError(
                f"The database schema is version {current}, older than this Tidings ({LATEST}):"
                " run `tidings db migrate` first."
            )
        if current == 0:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                         " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for number, script in migrations():
            if number <= current:
                continue
            conn.execute(script.encode())  # several statements: the simple query protocol
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            applied.append(number)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def generated_id_tables(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """Tables whose `id` the database generates (their INSERTs return it: see dialect.py)."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND column_name = 'id' AND is_identity = 'YES'"
    ).fetchall()
    return frozenset(r[0] for r in rows)
