"""Store administration: `tidings db init|migrate|status` and `tidings migrate --from DIR --to URL`.

`migrate` copies a whole embedded store into PostgreSQL: every table row as it is (accounts, mail,
threads, change log and states, so clients' states stay valid), the full-text index, and the blob
files (into the target's blob directory, unless it is the same). It refuses a target that already
has users unless --force (which empties it first), and ends by comparing the row counts of every table.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config
from .store.base import StoreError

# Copied in this order (parents before children); any other table of the source is copied after them.
_ORDER = ["users", "tokens", "accounts", "type_states", "changelog", "account_blobs", "mailboxes", "threads",
          "thread_refs", "emails", "email_mailboxes", "mailbox_threads"]
# Not copied as rows: SQLite's own tables, FTS5's (rebuilt below) and the id high-water mark
# (PostgreSQL's sequences are set instead).
_SKIP_PREFIXES = ("sqlite_", "email_fts")
_SKIP = {"id_high_water"}


def add_commands(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    db = commands.add_parser("db", help="create, upgrade or inspect the store's schema").add_subparsers(
        dest="action", metavar="ACTION"
    )
    for action, text in (
        ("init", "create the schema in an empty database (serve does it too)"),
        ("migrate", "upgrade the schema to this version of Tidings"),
        ("status", "print the schema version of the store and of this Tidings"),
    ):
        common(db.add_parser(action, help=text))
    migrate = commands.add_parser("migrate", help="copy an embedded (SQLite) store into PostgreSQL")
    common(migrate)
    migrate.add_argument("--from", dest="source", metavar="DIR", required=True, help="data directory to copy")
    migrate.add_argument("--to", dest="target", metavar="URL", required=True, help="postgresql://... target")
    migrate.add_argument("--force", action="store_true", help="empty a target that already has data")


def cmd_db(args: argparse.Namespace, config: Config) -> int:
    from .server import open_store

    if args.action not in ("init", "migrate", "status"):
        raise StoreError("usage: tidings db {init,migrate,status}")
    if args.action == "status" and config.store.startswith(("postgresql://", "postgres://")):
        from .store.postgres import check_schema

        current, latest = check_schema(config.store)
        advice = "" if current == latest else ": run tidings db migrate"
        print(f"schema version {current} (this Tidings: {latest}){advice}")
        return 0
    before = _version_before(config)
    store = open_store(config, upgrade=args.action == "migrate")
    try:
        after = store.schema_version()
        latest = store.latest_schema()  # type: ignore[attr-defined]
    finally:
        store.close()
    if args.action == "status":
        print(f"schema version {after} (this Tidings: {latest})")
    elif before == after:
        print(f"schema version {after}: up to date")
    else:
        print(f"schema upgraded from version {before} to {after}")
    return 0


def _version_before(config: Config) -> int:
    if config.store.startswith(("postgresql://", "postgres://")):
        from .store.postgres import check_schema

        return check_schema(config.store)[0]
    path = config.data_dir / "tidings.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    source = Path(args.source).expanduser()
    if not (source / "tidings.sqlite3").is_file():
        raise StoreError(f"{source} holds no Tidings store (no tidings.sqlite3)")
    if not args.target.startswith(("postgresql://", "postgres://")):
        raise StoreError("--to must be a postgresql:// URL")
    blob_dir = Path(config.blob_dir).expanduser() if config.blob_dir else config.data_dir / "blobs"
    counts = copy_store(source, args.target, blob_dir, force=args.force, progress=print)
    width = max(len(t) for t in counts)
    for table, (have, copied) in counts.items():
        print(f"  {table:<{width}}  {have:>9}  {copied:>9}")
    print(f"copied {source} to the PostgreSQL store; every count matches")
    return 0


def copy_store(
    source: Path, url: str, blob_dir: Path, *, force: bool = False, progress: Callable[[str], None] = print
) -> dict[str, tuple[int, int]]:
    """Copy the embedded store in `source` into the PostgreSQL store at `url`; (source, target) counts."""
    from .store.postgres import PgStore
    from .store.postgres.dialect import PgConnection
    from .store.postgres.emails import PgEmails
    from .store.sqlite import SqliteStore

    SqliteStore(source).close()  # bring the source's schema up to date first
    target = PgStore(url, blob_dir, upgrade=True)
    lite = sqlite3.connect(source / "tidings.sqlite3")
    try:
        with target.pool.connection() as raw:
            conn = PgConnection(raw, target._id_tables, {}, threading.Lock())
            tables = _tables(lite, conn)
            conn.execute("BEGIN")
            try:
                has_users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
                if has_users and not force:
                    raise StoreError("the target store is not empty (use --force to replace what it holds)")
                conn.execute("TRUNCATE " + ", ".join([*tables, "email_fts"]) + " RESTART IDENTITY CASCADE")
                conn.execute("SET CONSTRAINTS ALL DEFERRED")
                for table in tables:
                    _copy_table(lite, raw, table, progress)
                progress("rebuilding the full-text index")
                _copy_search_index(lite, conn, PgEmails)
                for table in sorted(target._id_tables):
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false)"
                        f" FROM {table}"
                    )
                counts = {t: _count(lite, t, conn) for t in tables}
                counts["email_fts"] = (
                    lite.execute("SELECT count(*) FROM email_fts").fetchone()[0],
                    conn.execute("SELECT count(*) FROM email_fts").fetchone()[0],
                )
                wrong = {t: c for t, c in counts.items() if c[0] != c[1]}
                if wrong:
                    raise StoreError(f"counts differ after the copy, nothing was kept: {wrong}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            # Planner statistics and the visibility map for the copied rows now, rather than whenever
            # autovacuum gets to them: until then queries are planned blind and every server process
            # pays for it (VACUUM runs outside a transaction; the pool's connections are autocommit).
            progress("analysing the copied tables")
            raw.execute("VACUUM (ANALYZE) " + ", ".join([*tables, "email_fts"]))
        progress("copying blobs")
        _copy_blobs(source / "blobs", blob_dir)
    finally:
        lite.close()
        target.close()
    return counts


def _tables(lite: sqlite3.Connection, conn: Any) -> list[str]:
    names = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    names = [n for n in names if not n.startswith(_SKIP_PREFIXES) and n not in _SKIP]
    present = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
    missing = [n for n in names if n not in present]
    if missing:
        raise StoreError(f"the PostgreSQL schema has no table for {missing}")
    return sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def _copy_table(lite: sqlite3.Connection, raw: Any, table: str, progress: Callable[[str], None]) -> None:
    cursor = lite.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cursor.description]
    progress(f"copying {table}")
    with raw.cursor() as out, out.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while rows := cursor.fetchmany(2000):
            for row in rows:
                copy.write_row(row)


def _copy_search_index(lite: sqlite3.Connection, conn: Any, emails: Any) -> None:
    from .store.base import SearchDocument

    rows = lite.execute(
        "SELECT f.rowid, e.account_id, f.subject, f.from_, f.to_, f.cc, f.bcc, f.body, f.attachments"
        " FROM email_fts f JOIN emails e ON e.id = f.rowid"
    )
    for email_id, account, *fields in rows:
        emails(conn, account).index_text(email_id, SearchDocument(*(f or "" for f in fields)))


def _count(lite: sqlite3.Connection, table: str, conn: Any) -> tuple[int, int]:
    return (lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _copy_blobs(source: Path, target: Path) -> None:
    if not source.is_dir() or (target.exists() and source.resolve() == target.resolve()):
        return
    for path in source.glob("*/*/*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination.with_suffix(".part"))
                destination.with_suffix(".part").replace(destination)
