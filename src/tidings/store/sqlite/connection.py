"""Opening SQLite connections and applying the schema migrations."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

import orjson

from ..base import SchemaTooNew


def migrations(package: str | None = __package__) -> list[tuple[int, str]]:
    """The numbered .sql files shipped in `package`'s migrations folder (this backend's), in order."""
    assert package is not None
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


LATEST = max(number for number, _ in migrations())


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    # Autocommit mode: transactions are begun explicitly (BEGIN / BEGIN IMMEDIATE) by the store.
    conn = sqlite3.connect(path, isolation_level=None, timeout=60.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns, so a 250 after it really means stored.
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=60000")
    # Memory: every thread has its own connection, so each one's cache counts, and the hot pages
    # (indexes, the account's rows) are the same in each. 4 MB of page cache each and no memory-mapped
    # I/O (a map per connection makes the same pages count once per thread) keep a server's memory
    # bounded; the operating system caches the file anyway, so a miss is a copy, not a disk read.
    # Measured with 4 clients (python -m bench): 8 MB cost about 20 MB more than 4 MB (PSS 113 -> 93
    # MB at 10,000 messages, 120 -> 99 MB at 100,000) and 16 MB about 50 MB more, for no measurable
    # CPU per request in the list, thread and search workloads.
    conn.execute("PRAGMA cache_size=-4000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA mmap_size=0")
    conn.create_function("tidings_header_match", 3, _header_match, deterministic=True)
    return conn


def _header_match(structure: bytes | None, name: str, text: str | None) -> int:
    """The Email filter `header` (RFC 8621 §4.4.1): the message has the field, containing the text.

    `structure` holds `headerText`: [[lower-cased name, decoded value], ...] written at ingest.
    """
    if not structure:
        return 0
    try:
        fields = orjson.loads(structure).get("headerText") or []
    except orjson.JSONDecodeError:
        return 0
    wanted = name.lower()
    needle = text.casefold() if text else None
    for field_name, value in fields:
        if field_name == wanted and (needle is None or needle in value.casefold()):
            return 1
    return 0


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the schema up to date; each migration commits with its version number or not at all."""
    applied = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > LATEST:
            raise SchemaTooNew(
                f"The database schema is version {current}, newer than this Tidings ({LATEST}): upgrade Tidings."
            )
        for number, script in migrations():
            if number <= current:
                continue
            for statement in _split(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            applied.append(number)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def _split(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
