"""The SQL dialect layer: the SQLite repositories' statements, run unchanged on PostgreSQL.

The repository classes of `store/sqlite/` are written in a portable subset of SQL with `?`
placeholders. Rather than keeping a second copy of every statement, the PostgreSQL backend runs the
same repository code over `PgConnection`, a `sqlite3.Connection` look-alike that rewrites each
statement once (the result is cached) into PostgreSQL's dialect:

* `?` becomes `%s` (and a literal `%` becomes `%%`);
* `INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`;
* in `ON CONFLICT ... DO UPDATE SET`, bare column references on the right of `=` are qualified with
  the table name (PostgreSQL calls them ambiguous), and two-argument `max`/`min` become
  `greatest`/`least`;
* `instr(a, b)` becomes `strpos(a, b)`, `x GLOB '[0-9]*'` a regular expression, `CAST(x AS INTEGER)`
  the leading digits as a number (SQLite's lenient cast), `LIMIT ?` accepts SQLite's -1 (no limit);
* a condition that is a bare `(1)` / `(0)` becomes `(TRUE)` / `(FALSE)`; a subquery in FROM gets
  the alias PostgreSQL 15 requires;
* `INSERT INTO t` of a table with a generated `id` returns it, so `cursor.lastrowid` works;
  SQLite's "one above the high-water mark" id (migration 0005) is the table's sequence.

What cannot be rewritten (full-text search, secure deletion, row locks) is overridden in the
PostgreSQL subclasses, and the contract tests run every statement on both backends.

Round trips: every statement is one round trip to the server, and under load each costs two context
switches and a wait for the CPU, on top of the work. Statements that take no parameters and return
nothing (`BEGIN ...`, `SAVEPOINT x`, `RELEASE x`) therefore wait in the connection and go out in one
pipeline with the next statement, whose result (or error) is the first the caller sees; a
transaction in which nothing else ran never reaches the server at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_INSERT_TABLE = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)\s*(\(([^)]*)\))?", re.IGNORECASE)
_DO_UPDATE = re.compile(r"\bDO\s+UPDATE\s+SET\b", re.IGNORECASE)
_GLOB_DIGIT = re.compile(r"\s+GLOB\s+'\[0-9\]\*'", re.IGNORECASE)
_CAST_INTEGER = re.compile(r"CAST\(([^()]+?) AS INTEGER\)", re.IGNORECASE)
_LIMIT = re.compile(r"\bLIMIT\s+\?", re.IGNORECASE)
_BARE_BOOL = re.compile(r"(?<=[(\s])\(([01])\)(?=[\s)]|$)")
_COUNT_SUBQUERY = re.compile(r"^(SELECT\s+count\(\*\)\s+FROM\s+\(.*\))\s*$", re.IGNORECASE | re.DOTALL)
_HIGH_WATER = re.compile(r"\(SELECT last_id \+ 1 FROM id_high_water WHERE name = '(\w+)'\)", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# Sent with the next statement (see the module's docstring).
_DEFERRABLE = re.compile(r"^\s*(BEGIN\b[\w\s]*|SAVEPOINT\s+\w+|RELEASE\s+\w+)\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*(COMMIT|ROLLBACK)\s*$", re.IGNORECASE)


def _balanced(sql: str, start: int) -> int:
    """Index just past the parenthesis closing the one opened at `start`."""
    depth = 0
    for i in range(start, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(sql)


def _top_level_commas(inner: str) -> int:
    depth = commas = 0
    for c in inner:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            commas += 1
    return commas


def _scalar_min_max(sql: str) -> str:
    """SQLite's scalar max(a, b) / min(a, b) are PostgreSQL's greatest / least."""
    out = []
    i = 0
    pattern = re.compile(r"\b(max|min)\(", re.IGNORECASE)
    while True:
        match = pattern.search(sql, i)
        if match is None:
            out.append(sql[i:])
            return "".join(out)
        open_at = match.end() - 1
        close_at = _balanced(sql, open_at)
        inner = sql[open_at + 1 : close_at - 1]
        out.append(sql[i : match.start()])
        if _top_level_commas(inner) > 0:
            out.append("greatest(" if match.group(1).lower() == "max" else "least(")
        else:
            out.append(match.group(1) + "(")
        out.append(_scalar_min_max(inner) + ")")
        i = close_at


def _qualify_upsert(sql: str, table: str, columns: list[str]) -> str:
    match = _DO_UPDATE.search(sql)
    if match is None or not columns:
        return sql
    head, tail = sql[: match.end()], sql[match.end() :]
    names = "|".join(re.escape(c) for c in sorted(columns, key=len, reverse=True))
    # A column not preceded by "." and not the target of an assignment ("col =").
    pattern = re.compile(rf"(?<![\w.])({names})\b(?!\s*=(?!=))")
    return head + pattern.sub(lambda m: f"{table}.{m.group(1)}", tail)


def translate(sql: str, generated_id_tables: frozenset[str]) -> tuple[str, bool]:
    """(PostgreSQL statement, whether it returns a generated id) for a SQLite-dialect statement."""
    out = _HIGH_WATER.sub(r"nextval('\1_id_seq')", sql).replace("%", "%%")
    out = out.replace("strftime('%%s', 'now')", "extract(epoch from now())::bigint")
    returns_id = False
    insert = _INSERT_TABLE.match(out)
    if insert is not None:
        table = insert.group(1)
        columns = [c.strip() for c in (insert.group(3) or "").split(",") if c.strip()]
        if _INSERT_OR_IGNORE.match(out):
            out = _INSERT_OR_IGNORE.sub("INSERT INTO", out, count=1)
            out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
        out = _qualify_upsert(out, table, columns)
        if table in generated_id_tables and not _RETURNING.search(out):
            out += " RETURNING id"
            returns_id = True
    else:
        out = _BARE_BOOL.sub(lambda m: "(TRUE)" if m.group(1) == "1" else "(FALSE)", out)
        out = _COUNT_SUBQUERY.sub(r"\1 AS counted", out)
    out = _scalar_min_max(out)
    out = re.sub(r"\binstr\(", "strpos(", out, flags=re.IGNORECASE)
    out = _GLOB_DIGIT.sub(" ~ '^[0-9]'", out)
    out = _CAST_INTEGER.sub(r"CAST(nullif(substring(\1 from '^[0-9]+'), '') AS NUMERIC)", out)
    out = _LIMIT.sub("LIMIT nullif(?::bigint, -1)", out)
    return out.replace("?", "%s"), returns_id


class Result:
    """What `sqlite3.Cursor` offers the repositories: fetchone, fetchall, iteration, counts, lastrowid."""

    __slots__ = ("_cursor", "_rows", "lastrowid", "rowcount")

    def __init__(self, cursor: psycopg.Cursor[Any] | None, lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount if cursor is not None else -1

    def fetchone(self) -> Any:
        if self._cursor is None or self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._cursor is None or self._cursor.description is None:
            return []
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _params(params: Sequence[Any]) -> list[Any]:
    # SQLite stores booleans as 0/1 and so do the shared schemas.
    return [int(p) if isinstance(p, bool) else p for p in params]


class PgConnection:
    """A psycopg connection with the subset of the `sqlite3.Connection` API the repositories use."""

    def __init__(self, raw: psycopg.Connection[Any], generated_id_tables: frozenset[str],
                 cache: dict[tuple[str, bool], tuple[str, bool]], lock: threading.Lock) -> None:
        self.raw = raw
        self._tables = generated_id_tables
        self._cache = cache
        self._lock = lock
        self._deferred: list[str] = []

    def _translate(self, sql: str, has_params: bool) -> tuple[str, bool]:
        key = (sql, has_params)
        found = self._cache.get(key)
        if found is None:
            if has_params:
                found = translate(sql, self._tables)
            else:
                # Without parameters psycopg sends the text as is: no placeholders, no %% escaping.
                text, returns = translate(sql, self._tables)
                found = (text.replace("%%", "%"), returns)
            with self._lock:
                self._cache[key] = found
        return found

    @property
    def in_transaction(self) -> bool:
        """Whether the server has a transaction open on this connection (a deferred BEGIN is not one)."""
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Send the statements run in this block, and the deferred ones before them, in one round trip;
        their results (and the first error) arrive at the end of the block. Results read inside the
        block cost a round trip each, as usual."""
        if self.raw.info.pipeline_status != psycopg.pq.PipelineStatus.OFF:
            yield  # already in one
            return
        with self.raw.pipeline():
            yield

    def _send_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for statement in deferred:
            self.raw.execute(statement)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        if not params:
            if _DEFERRABLE.match(sql):
                self._deferred.append(sql)
                return Result(None)
            if _END.match(sql) and self._deferred and self._deferred[0].lstrip().upper().startswith("BEGIN"):
                self._deferred.clear()  # the transaction never reached the server: nothing to end
                return Result(None)
        text, returns_id = self._translate(sql, bool(params))
        values = _params(params) if params else None
        if self._deferred:
            with self.pipeline():
                self._send_deferred()
                cursor = self.raw.execute(text, values)
        else:
            cursor = self.raw.execute(text, values)
        if returns_id:
            row = cursor.fetchone()
            return Result(cursor, int(row[0]) if row else None)
        return Result(cursor)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Result:
        rows = [_params(p) for p in seq]
        if not rows:
            return Result(None)
        text, returns_id = self._translate(sql, True)
        if returns_id:
            text = text[: -len(" RETURNING id")]
        with self.raw.cursor() as cursor, self.pipeline():
            self._send_deferred()
            cursor.executemany(text, rows)
        return Result(None)
