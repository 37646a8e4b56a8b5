"""Which storage backends the tests run on, and a throwaway PostgreSQL database per test session.

`TIDINGS_TEST_STORES` lists the backends (default "sqlite,postgresql"). PostgreSQL is reached at
`TIDINGS_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432/postgres); when it does not
answer, the PostgreSQL variants are skipped with the reason, unless `TIDINGS_REQUIRE_POSTGRES=1`
(CI), which makes them fail. `TIDINGS_TEST_STORES=sqlite` runs SQLite alone.

Each test session creates a uniquely named database (and drops it at exit), so parallel runs never
collide; each data directory a test opens gets its own schema in it, so a test that reopens the same
directory (a restart) finds its data again, and no two tests share tables.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ADMIN_URL = os.environ.get("TIDINGS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("TIDINGS_REQUIRE_POSTGRES", "") not in ("", "0")
SQLITE, POSTGRESQL = "sqlite", "postgresql"

# The backend of the test being set up (see the `store_backend` fixture in tests/conftest.py).
current = {"backend": SQLITE}

_lock = threading.Lock()
_database: dict[str, str] = {}
_schemas: dict[Path, str] = {}
_probe: dict[str, str | None] = {}


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    if "result" not in _probe:
        try:
            import psycopg

            with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _probe["result"] = None
        except Exception as exc:  # any failure is a reason to skip (or fail, in CI)
            _probe["result"] = f"PostgreSQL is not reachable at {ADMIN_URL}: {str(exc).strip() or type(exc).__name__}"
    return _probe["result"]


def backends() -> list[str]:
    wanted = os.environ.get("TIDINGS_TEST_STORES")
    if wanted:
        return [b.strip() for b in wanted.split(",") if b.strip()]
    # Without PostgreSQL its variants are still collected, and skipped with the reason (failed in CI).
    return [SQLITE, POSTGRESQL]


def skip_reason() -> str | None:
    """Printed in the test header when PostgreSQL variants are skipped by default."""
    if os.environ.get("TIDINGS_TEST_STORES") or REQUIRE_POSTGRES:
        return None
    problem = postgres_problem()
    return None if problem is None else f"{problem}; PostgreSQL variants are not run (TIDINGS_TEST_STORES)"


def _with_database(url: str, name: str, options: str | None = None) -> str:
    parts = urlsplit(url)
    query = f"options={quote(options)}" if options else ""
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, query, ""))


def session_database() -> str:
    """The URL of this session's database, created on first use."""
    with _lock:
        if "url" not in _database:
            import psycopg

            name = f"tidings_test_{os.getpid()}_{secrets.token_hex(4)}"
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = _with_database(ADMIN_URL, name)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
            _database["url"] = url
            _database["name"] = name
            atexit.register(drop_session_database)
        return _database["url"]


def drop_session_database() -> None:
    with _lock:
        name = _database.pop("name", None)
        _database.pop("url", None)
    if name is None:
        return
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(data: Path) -> str:
    """A store URL for a test's data directory: its own schema in the session database."""
    key = data.resolve()
    base = session_database()
    with _lock:
        schema = _schemas.get(key)
        if schema is None:
            import psycopg

            schema = f"t{len(_schemas) + 1}_{secrets.token_hex(3)}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            _schemas[key] = schema
    return _with_database(base, _database["name"], f"-csearch_path={schema},public")


def store_for(data: Path) -> str:
    """The `store` option for a test's data directory on the current backend ("" is SQLite).

    It is also put in $TIDINGS_STORE (restored after the test module), so that a `tidings` command a
    test runs with `--data` reaches the same store as the test's server.
    """
    url = postgres_url(data) if current["backend"] == POSTGRESQL else ""
    os.environ["TIDINGS_STORE"] = url
    return url
