"""Emails, threads, per-mailbox thread summaries, full-text index and Email queries in SQLite."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from ..base import EmailFilter, EmailRow, Emails, EmailSort, MailboxThread, SearchDocument, ThreadMember

_ROW = (
    "e.id, e.thread_id, e.blob_id, e.size, e.received_at, e.sent_at, e.keywords, e.has_attachment,"
    " e.subject_sort, e.subject_key, e.from_sort, e.from_key, e.to_sort, e.to_key, e.message_id, e.summary"
)
_CHUNK = 500
# One above the highest id the table ever had (RFC 8620 §1.2: ids are never reused; migration 0005).
_NEXT_ID = "(SELECT last_id + 1 FROM id_high_water WHERE name = '{}')"
_FTS_COLUMNS = {
    "text": "{subject from_ to_ cc bcc body attachments}",
    "from": "from_",
    "to": "to_",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "body": "{body attachments}",
}


def keywords_text(keywords: Iterable[str]) -> str:
    return " " + " ".join(sorted(keywords)) + " " if keywords else " "


def _keywords(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _chunks(items: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def fts_query(terms: list[tuple[bool, str]]) -> str:
    """An FTS5 query: every term must match; phrases exactly, other words as prefixes."""
    parts = []
    for is_phrase, text in terms:
        quoted = '"' + text.replace('"', '""') + '"'
        parts.append(quoted if is_phrase else quoted + "*")
    return " AND ".join(parts)


class SqliteEmails(Emails):
    def __init__(self, conn: sqlite3.Connection, account_pk: int) -> None:
        self.conn = conn
        self.account_pk = account_pk

    # -- rows

    def insert(self, row: EmailRow) -> int:
        cur = self.conn.execute(
            # An explicit id above every id ever used: ids are never reused (migration 0005).
            "INSERT INTO emails (id, account_id, thread_id, blob_id, size, received_at, sent_at, keywords, unread,"
            " has_attachment, subject_sort, subject_key, from_sort, from_key, to_sort, to_key, message_id,"
            f" summary, structure) VALUES ({_NEXT_ID.format('emails')}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?)",
            (
                self.account_pk, row.thread_id, row.blob_id, row.size, row.received_at, row.sent_at,
                keywords_text(row.keywords), int(row.unread), int(row.has_attachment), row.subject_sort,
                row.subject_key, row.from_sort, row.from_key, row.to_sort, row.to_key, row.message_id,
                row.summary, row.structure or b"{}",
            ),
        )
        email_id = cur.lastrowid
        assert email_id is not None
        self.conn.executemany(
            "INSERT INTO email_mailboxes (mailbox_id, email_id, received_at) VALUES (?, ?, ?)",
            [(m, email_id, row.received_at) for m in row.mailbox_ids],
        )
        return email_id

    def rows(self, ids: list[int], *, structure: bool = False) -> dict[int, EmailRow]:
        out: dict[int, EmailRow] = {}
        columns = _ROW + (", e.structure" if structure else "")
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                # "+": look the rows up by id; an index on account_id would scan the whole account.
                f"SELECT {columns} FROM emails e WHERE +e.account_id = ? AND e.id IN ({marks})",
                (self.account_pk, *chunk),
            ):
                out[r[0]] = EmailRow(
                    r[0], r[1], r[2], r[3], r[4], r[5], _keywords(r[6]), bool(r[7]), r[8], r[9], r[10], r[11],
                    r[12], r[13], r[14], r[15], r[16] if structure else None,
                )
            memberships: dict[int, set[int]] = {}
            for email_id, mailbox_id in self.conn.execute(
                f"SELECT email_id, mailbox_id FROM email_mailboxes WHERE email_id IN ({marks})", chunk
            ):
                memberships.setdefault(email_id, set()).add(mailbox_id)
            for email_id, mailboxes in memberships.items():
                if email_id in out:
                    out[email_id].mailbox_ids = frozenset(mailboxes)
        return out

    def all_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM emails WHERE account_id = ? ORDER BY id",
                                                (self.account_pk,))]

    def set_keywords(self, email_id: int, keywords: frozenset[str]) -> None:
        unread = "$seen" not in keywords and "$draft" not in keywords
        self.conn.execute(
            "UPDATE emails SET keywords = ?, unread = ? WHERE id = ? AND account_id = ?",
            (keywords_text(keywords), int(unread), email_id, self.account_pk),
        )

    def set_mailboxes(self, email_id: int, add: set[int], remove: set[int], received_at: int) -> None:
        self.conn.executemany(
            "DELETE FROM email_mailboxes WHERE mailbox_id = ? AND email_id = ?", [(m, email_id) for m in remove]
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO email_mailboxes (mailbox_id, email_id, received_at) VALUES (?, ?, ?)",
            [(m, email_id, received_at) for m in add],
        )

    def set_thread(self, email_ids: list[int], thread_id: int) -> None:
        for chunk in _chunks(email_ids):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(
                f"UPDATE emails SET thread_id = ? WHERE +account_id = ? AND id IN ({marks})",
                (thread_id, self.account_pk, *chunk),
            )

    def delete(self, email_id: int) -> None:
        self.conn.execute("DELETE FROM email_mailboxes WHERE email_id = ?", (email_id,))
        self.conn.execute("DELETE FROM emails WHERE id = ? AND account_id = ?", (email_id, self.account_pk))

    def by_blob(self, blob_id: str) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM emails WHERE account_id = ? AND blob_id = ? ORDER BY id", (self.account_pk, blob_id))]

    def by_message_id(self, message_id: str) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM emails WHERE account_id = ? AND message_id = ? ORDER BY id",
            (self.account_pk, message_id))]

    def in_mailbox(self, mailbox_id: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT email_id FROM email_mailboxes WHERE mailbox_id = ? ORDER BY email_id", (mailbox_id,))]

    # -- threads

    def thread_members(self, thread_id: int) -> list[ThreadMember]:
        rows = self.conn.execute(
            "SELECT id, received_at, keywords FROM emails WHERE thread_id = ? ORDER BY received_at, id",
            (thread_id,),
        ).fetchall()
        memberships: dict[int, set[int]] = {}
        for email_id, mailbox_id in self.conn.execute(
            "SELECT m.email_id, m.mailbox_id FROM email_mailboxes m JOIN emails e ON e.id = m.email_id"
            " WHERE e.thread_id = ?",
            (thread_id,),
        ):
            memberships.setdefault(email_id, set()).add(mailbox_id)
        return [
            ThreadMember(r[0], r[1], _keywords(r[2]), frozenset(memberships.get(r[0], ()))) for r in rows
        ]

    def thread_email_ids(self, thread_ids: list[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for chunk in _chunks(thread_ids):
            marks = ",".join("?" * len(chunk))
            for thread_id, email_id in self.conn.execute(
                f"SELECT thread_id, id FROM emails WHERE +account_id = ? AND thread_id IN ({marks})"
                " ORDER BY thread_id, received_at, id",
                (self.account_pk, *chunk),
            ):
                out.setdefault(thread_id, []).append(email_id)
        return out

    def new_thread(self, base_subject: str) -> int:
        cur = self.conn.execute(
            f"INSERT INTO threads (id, account_id, base_subject) VALUES ({_NEXT_ID.format('threads')}, ?, ?)",
            (self.account_pk, base_subject),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete_thread(self, thread_id: int) -> None:
        self.conn.execute("DELETE FROM thread_refs WHERE thread_id = ?", (thread_id,))
        self.conn.execute("DELETE FROM threads WHERE id = ? AND account_id = ?", (thread_id, self.account_pk))

    def threads_for_msgids(self, msgids: list[str]) -> list[tuple[str, int, str]]:
        out: list[tuple[str, int, str]] = []
        for start in range(0, len(msgids), _CHUNK):
            chunk = msgids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            out.extend(
                self.conn.execute(
                    f"SELECT r.msgid, r.thread_id, t.base_subject FROM thread_refs r JOIN threads t"
                    f" ON t.id = r.thread_id WHERE r.account_id = ? AND r.msgid IN ({marks})",
                    (self.account_pk, *chunk),
                )
            )
        return out

    def add_thread_refs(self, thread_id: int, msgids: list[str]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO thread_refs (account_id, msgid, thread_id) VALUES (?, ?, ?)",
            [(self.account_pk, m, thread_id) for m in msgids],
        )

    def move_thread_refs(self, from_thread: int, to_thread: int) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO thread_refs (account_id, msgid, thread_id)"
            " SELECT account_id, msgid, ? FROM thread_refs WHERE thread_id = ?",
            (to_thread, from_thread),
        )
        self.conn.execute("DELETE FROM thread_refs WHERE thread_id = ?", (from_thread,))

    def all_thread_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM threads WHERE account_id = ? ORDER BY id",
                                                (self.account_pk,))]

    def thread_index(self, thread_ids: list[int]) -> dict[int, tuple[str, frozenset[str]]]:
        subjects: dict[int, str] = {}
        msgids: dict[int, set[str]] = {}
        for chunk in _chunks(thread_ids):
            marks = ",".join("?" * len(chunk))
            subjects.update(self.conn.execute(
                f"SELECT id, base_subject FROM threads WHERE account_id = ? AND id IN ({marks})",
                (self.account_pk, *chunk)))
            for thread_id, msgid in self.conn.execute(
                f"SELECT thread_id, msgid FROM thread_refs WHERE thread_id IN ({marks})", chunk
            ):
                msgids.setdefault(thread_id, set()).add(msgid)
        return {t: (subject, frozenset(msgids.get(t, ()))) for t, subject in subjects.items()}

    def reset_thread(self, thread_id: int, base_subject: str, msgids: list[str]) -> None:
        self.conn.execute("UPDATE threads SET base_subject = ? WHERE id = ? AND account_id = ?",
                          (base_subject, thread_id, self.account_pk))
        self.conn.execute("DELETE FROM thread_refs WHERE thread_id = ?", (thread_id,))
        self.add_thread_refs(thread_id, msgids)

    # -- per-mailbox thread summaries and counts

    def mailbox_threads(self, thread_id: int) -> dict[int, MailboxThread]:
        return {
            r[0]: MailboxThread(r[0], thread_id, r[1], r[2], r[3], r[4], bool(r[5]))
            for r in self.conn.execute(
                "SELECT mailbox_id, newest_at, newest_id, oldest_at, oldest_id, unread FROM mailbox_threads"
                " WHERE thread_id = ?",
                (thread_id,),
            )
        }

    def put_mailbox_thread(self, row: MailboxThread) -> None:
        self.conn.execute(
            "INSERT INTO mailbox_threads (mailbox_id, thread_id, newest_at, newest_id, oldest_at, oldest_id, unread)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox_id, thread_id) DO UPDATE SET"
            " newest_at = excluded.newest_at, newest_id = excluded.newest_id, oldest_at = excluded.oldest_at,"
            " oldest_id = excluded.oldest_id, unread = excluded.unread",
            (row.mailbox_id, row.thread_id, row.newest_at, row.newest_id, row.oldest_at, row.oldest_id,
             int(row.unread)),
        )

    def delete_mailbox_thread(self, mailbox_id: int, thread_id: int) -> None:
        self.conn.execute(
            "DELETE FROM mailbox_threads WHERE mailbox_id = ? AND thread_id = ?", (mailbox_id, thread_id)
        )

    def adjust_counts(self, mailbox_id: int, emails: int, unread: int, threads: int, unread_threads: int) -> None:
        self.conn.execute(
            "UPDATE mailboxes SET total_emails = total_emails + ?, unread_emails = unread_emails + ?,"
            " total_threads = total_threads + ?, unread_threads = unread_threads + ?"
            " WHERE id = ? AND account_id = ?",
            (emails, unread, threads, unread_threads, mailbox_id, self.account_pk),
        )

    def recount(self, mailbox_id: int) -> tuple[int, int, int, int]:
        emails, unread = self.conn.execute(
            "SELECT count(*), coalesce(sum(e.unread), 0) FROM email_mailboxes m JOIN emails e ON e.id = m.email_id"
            " WHERE m.mailbox_id = ? AND e.account_id = ?",
            (mailbox_id, self.account_pk),
        ).fetchone()
        threads, unread_threads = self.conn.execute(
            "SELECT count(*), coalesce(sum(unread), 0) FROM mailbox_threads WHERE mailbox_id = ?", (mailbox_id,)
        ).fetchone()
        return emails, unread, threads, unread_threads

    # -- full-text index

    def index_text(self, email_id: int, document: SearchDocument) -> None:
        self.conn.execute(
            "INSERT INTO email_fts (rowid, subject, from_, to_, cc, bcc, body, attachments)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (email_id, document.subject, document.from_, document.to, document.cc, document.bcc, document.body,
             document.attachments),
        )

    def unindex_text(self, email_id: int) -> None:
        self.conn.execute("DELETE FROM email_fts WHERE rowid = ?", (email_id,))

    def snippets(self, email_ids: list[int], fts_query: EmailFilter) -> dict[int, tuple[str | None, str | None]]:
        match = _text_match(fts_query)
        out: dict[int, tuple[str | None, str | None]] = {}
        if match is None:
            return out
        for chunk in _chunks(email_ids):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT rowid, highlight(email_fts, 0, char(1), char(2)),"
                " snippet(email_fts, 5, char(1), char(2), '…', 24)"
                f" FROM email_fts WHERE email_fts MATCH ? AND rowid IN ({marks})",
                (match, *chunk),
            )
            for rowid, subject, body in rows:
                out[rowid] = (subject, body)
        return out

    # -- queries

    def query(
        self,
        filter: EmailFilter | None,
        sort: list[EmailSort],
        collapse_threads: bool,
        position: int,
        limit: int | None,
        anchor: int | None,
        anchor_offset: int,
        want_total: bool,
    ) -> tuple[list[int], int, int | None]:
        fast = self._fast_mailbox_query(filter, sort, collapse_threads, position, limit, anchor, anchor_offset,
                                        want_total)
        if fast is not None:
            return fast
        if (filter is not None and filter[0] in _FTS_COLUMNS and filter[1] and len(sort) == 1
                and sort[0].property == "receivedAt" and anchor is None and position >= 0 and limit is not None
                and not want_total):
            return self._fast_text_query(filter, sort[0].ascending, collapse_threads, position, limit), position, None
        where, params = _compile(filter, self._text_condition)
        order = _order_by(sort)
        # With a full-text condition every result is a match: the full-text index drives the query,
        # not the account's index, which would walk every email of the account ("+" disables it).
        account = "+e.account_id" if _driven_by_text(filter) else "e.account_id"
        if collapse_threads:
            sql = (
                f"SELECT id FROM (SELECT e.id, row_number() OVER (PARTITION BY e.thread_id ORDER BY {order}) AS rn"
                f" FROM emails e WHERE {account} = ? AND ({where})) AS ranked JOIN emails e USING (id)"
                f" WHERE rn = 1 ORDER BY {order}"
            )
        else:
            sql = f"SELECT e.id FROM emails e WHERE {account} = ? AND ({where}) ORDER BY {order}"
        args = [self.account_pk, *params]
        if anchor is not None or position < 0:
            every = [r[0] for r in self.conn.execute(sql, args)]
            if anchor is not None:
                try:
                    start = max(0, every.index(anchor) + anchor_offset)
                except ValueError:
                    raise LookupError(anchor) from None
            else:
                start = max(0, len(every) + position)
            end = len(every) if limit is None else start + limit
            return every[start:end], start, len(every)
        window = sql + " LIMIT ? OFFSET ?"
        ids = [r[0] for r in self.conn.execute(window, [*args, -1 if limit is None else limit, position])]
        count: int | None = None
        if want_total:
            count = self.conn.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0]
        return ids, position, count

    def _text_condition(self, kind: str, terms: list[tuple[bool, str]]) -> tuple[str, list[Any]]:
        """The condition on `emails e` for a full-text filter (each backend has its own index)."""
        match = f"{_FTS_COLUMNS[kind]} : ({fts_query(terms)})"
        return "e.id IN (SELECT rowid FROM email_fts WHERE email_fts MATCH ?)", [match]

    def _fast_text_query(self, filter: EmailFilter, ascending: bool, collapse: bool, position: int,
                         limit: int) -> list[int]:
        """A search box: one full-text condition by receivedAt. The matches are sorted from a compact
        index (migration 0006) and read in order until the window is full; with collapsed threads,
        the first email met of each thread stands for it (as in the general query)."""
        where, params = self._text_condition(filter[0], filter[1])
        direction = "ASC" if ascending else "DESC"
        # SQLite would read each row by its rowid; other databases (a subclass) choose for themselves.
        hint = " INDEXED BY emails_sort" if isinstance(self.conn, sqlite3.Connection) else ""
        rows = self.conn.execute(
            f"SELECT e.id, e.thread_id FROM emails e{hint} WHERE {where} AND e.account_id = ?"
            f" ORDER BY e.received_at {direction}, e.id {direction}",
            (*params, self.account_pk),
        )
        out: list[int] = []
        seen: set[int] = set()
        index = 0
        for email_id, thread_id in rows:
            if collapse:
                if thread_id in seen:
                    continue
                seen.add(thread_id)
            if index >= position:
                out.append(email_id)
                if len(out) >= limit:
                    break
            index += 1
        return out

    def _fast_mailbox_query(
        self,
        filter: EmailFilter | None,
        sort: list[EmailSort],
        collapse: bool,
        position: int,
        limit: int | None,
        anchor: int | None,
        anchor_offset: int,
        want_total: bool,
    ) -> tuple[list[int], int, int | None] | None:
        """The list view: one mailbox by receivedAt, served from an index in time independent of its size."""
        if filter is None or filter[0] != "inMailbox" or len(sort) != 1 or sort[0].property != "receivedAt":
            return None
        mailbox_id = filter[1]
        direction = "ASC" if sort[0].ascending else "DESC"
        if collapse:
            column_at, column_id = ("oldest_at", "oldest_id") if sort[0].ascending else ("newest_at", "newest_id")
            source = f"SELECT {column_id} FROM mailbox_threads WHERE mailbox_id = ?"
            order = f" ORDER BY {column_at} {direction}, {column_id} {direction}"
            count_sql = "SELECT total_threads FROM mailboxes WHERE id = ?"
            keys = (f"SELECT {column_at}, {column_id} FROM mailbox_threads WHERE mailbox_id = ? AND {column_id} = ?")
            before = (f"SELECT count(*) FROM mailbox_threads WHERE mailbox_id = ? AND ({column_at}, {column_id})"
                      f" {'<' if sort[0].ascending else '>'} (?, ?)")
        else:
            source = "SELECT email_id FROM email_mailboxes WHERE mailbox_id = ?"
            order = f" ORDER BY received_at {direction}, email_id {direction}"
            count_sql = "SELECT total_emails FROM mailboxes WHERE id = ?"
            keys = "SELECT received_at, email_id FROM email_mailboxes WHERE mailbox_id = ? AND email_id = ?"
            before = (f"SELECT count(*) FROM email_mailboxes WHERE mailbox_id = ? AND (received_at, email_id)"
                      f" {'<' if sort[0].ascending else '>'} (?, ?)")
        total: int | None = None
        if want_total or position < 0:
            row = self.conn.execute(count_sql, (mailbox_id,)).fetchone()
            total = row[0] if row else 0
        if anchor is not None:
            key = self.conn.execute(keys, (mailbox_id, anchor)).fetchone()
            if key is None:
                raise LookupError(anchor)
            index = self.conn.execute(before, (mailbox_id, *key)).fetchone()[0]
            start = max(0, index + anchor_offset)
        elif position < 0:
            assert total is not None
            start = max(0, total + position)
        else:
            start = position
        ids = [r[0] for r in self.conn.execute(source + order + " LIMIT ? OFFSET ?",
                                               (mailbox_id, -1 if limit is None else limit, start))]
        return ids, start, total


def _text_match(node: EmailFilter) -> str | None:
    """One FTS5 MATCH expression for the positive text conditions of a filter (for snippets)."""
    parts: list[str] = []

    def walk(n: EmailFilter, negated: bool) -> None:
        kind = n[0]
        if kind in ("and", "or"):
            for child in n[1]:
                walk(child, negated)
        elif kind == "not":
            for child in n[1]:
                walk(child, not negated)
        elif kind in _FTS_COLUMNS and not negated and n[1]:
            parts.append(f"({_FTS_COLUMNS[kind]} : ({fts_query(n[1])}))")

    walk(node, False)
    return " OR ".join(parts) if parts else None


def _driven_by_text(node: EmailFilter | None) -> bool:
    """Whether every email the filter matches must match a full-text condition."""
    if node is None:
        return False
    if node[0] in _FTS_COLUMNS:
        return bool(node[1])
    if node[0] == "and":
        return any(_driven_by_text(child) for child in node[1])
    return False


def _kw(keyword: str) -> str:
    return f" {keyword} "


TextCondition = Callable[[str, list[tuple[bool, str]]], tuple[str, list[Any]]]
# The text of a `header` filter on Message-ID that is one whole msg-id (RFC 5322 §3.6.4).
_BRACKETED_ID = re.compile(r"\s*<([^<>\s]+)>\s*")


def _compile(node: EmailFilter | None, text: TextCondition) -> tuple[str, list[Any]]:
    """A normalised filter (store/base.py EmailFilter) as an SQL condition on `emails e`."""
    if node is None:
        return "1", []
    kind = node[0]
    if kind in ("and", "or"):
        if not node[1]:
            return ("1" if kind == "and" else "0"), []
        parts, params = zip(*(_compile(child, text) for child in node[1]), strict=True)
        joiner = " AND " if kind == "and" else " OR "
        return joiner.join(f"({p})" for p in parts), [x for ps in params for x in ps]
    if kind == "not":
        if not node[1]:
            return "1", []
        inner, params = _compile(("or", node[1]), text)
        return f"NOT ({inner})", params
    if kind == "none":
        return "0", []
    if kind == "inMailbox":
        return "EXISTS (SELECT 1 FROM email_mailboxes m WHERE m.email_id = e.id AND m.mailbox_id = ?)", [node[1]]
    if kind == "inMailboxOtherThan":
        # RFC 8621 §4.4.1: in at least one mailbox not listed; with none listed, any email (each is in one).
        if not node[1]:
            return "1", []
        marks = ",".join("?" * len(node[1]))
        return (f"EXISTS (SELECT 1 FROM email_mailboxes m WHERE m.email_id = e.id AND m.mailbox_id NOT IN ({marks}))",
                list(node[1]))
    if kind == "before":
        return "e.received_at < ?", [node[1]]
    if kind == "after":
        return "e.received_at >= ?", [node[1]]
    if kind == "minSize":
        return "e.size >= ?", [node[1]]
    if kind == "maxSize":
        return "e.size < ?", [node[1]]
    if kind == "hasKeyword":
        return "instr(e.keywords, ?) > 0", [_kw(node[1])]
    if kind == "notKeyword":
        return "instr(e.keywords, ?) = 0", [_kw(node[1])]
    if kind == "allInThreadHaveKeyword":
        return ("NOT EXISTS (SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id AND instr(t.keywords, ?) = 0)",
                [_kw(node[1])])
    if kind == "someInThreadHaveKeyword":
        return ("EXISTS (SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id AND instr(t.keywords, ?) > 0)",
                [_kw(node[1])])
    if kind == "noneInThreadHaveKeyword":
        return ("NOT EXISTS (SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id AND instr(t.keywords, ?) > 0)",
                [_kw(node[1])])
    if kind == "hasAttachment":
        return "e.has_attachment = ?", [int(node[1])]
    if kind in _FTS_COLUMNS:
        if not node[1]:
            return "1", []
        return text(kind, node[1])
    if kind == "header":
        condition, params = "tidings_header_match(e.structure, ?, ?)", [node[1], node[2]]
        bracketed = _BRACKETED_ID.fullmatch(node[2] or "") if node[1].lower() == "message-id" else None
        if bracketed:
            # A whole "<id>" searched in Message-ID: the emails whose (first) Message-ID is that
            # id, found by the index of migration 0010, then checked by the filter itself. (A
            # malformed field holding several ids is found by its first one only.)
            return f"lower(e.message_id) = ? AND {condition}", [bracketed.group(1).lower(), *params]
        return condition, params
    raise ValueError(f"unknown filter {kind!r}")


def _order_by(sort: list[EmailSort]) -> str:
    parts = []
    for comparator in sort:
        direction = "ASC" if comparator.ascending else "DESC"
        prop = comparator.property
        if prop in ("from", "to", "subject"):
            raw = {"from": "e.from_sort", "to": "e.to_sort", "subject": "e.subject_sort"}[prop]
            key = {"from": "e.from_key", "to": "e.to_key", "subject": "e.subject_key"}[prop]
            collation = comparator.collation or "i;unicode-casemap"
            if collation == "i;ascii-casemap":
                parts.append(f"upper({raw}) {direction}")  # SQLite's upper() folds ASCII letters only
            elif collation == "i;octet":
                parts.append(f"{raw} {direction}")
            elif collation == "i;ascii-numeric":
                parts.append(f"({raw} GLOB '[0-9]*') {'DESC' if comparator.ascending else 'ASC'}")
                parts.append(f"CAST({raw} AS INTEGER) {direction}")
            else:
                parts.append(f"{key} {direction}, {raw} {direction}")
        elif prop == "receivedAt":
            parts.append(f"e.received_at {direction}")
        elif prop == "sentAt":
            parts.append(f"coalesce(e.sent_at, 0) {direction}")
        elif prop == "size":
            parts.append(f"e.size {direction}")
        elif prop == "hasKeyword":
            parts.append(f"(instr(e.keywords, {_sql_string(_kw(comparator.keyword or ''))}) > 0) {direction}")
        elif prop in ("allInThreadHaveKeyword", "someInThreadHaveKeyword"):
            keyword = _sql_string(_kw(comparator.keyword or ""))
            test = "= 0" if prop == "allInThreadHaveKeyword" else "> 0"
            exists = (f"EXISTS (SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id"
                      f" AND instr(t.keywords, {keyword}) {test})")
            expression = f"NOT {exists}" if prop == "allInThreadHaveKeyword" else exists
            parts.append(f"({expression}) {direction}")
        elif prop == "id":
            parts.append(f"e.id {direction}")
    # A stable order when every comparator ties (RFC 8620 §5.5): the id, newest first like receivedAt.
    last_desc = bool(sort) and not sort[-1].ascending
    parts.append(f"e.id {'DESC' if last_desc else 'ASC'}")
    return ", ".join(parts)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
