"""Rebuilding the conversations index from the stored raw messages (`tidings conversations rebuild`).

Theory of operation
-------------------
1. Scan (read snapshots, no lock held): every email's id, thread and blob; then, in (receivedAt, id)
   order, its Message-ID/In-Reply-To/References and subject, parsed again from the raw message.
2. Replay (in memory): the messages are threaded again with the rule live ingest uses
   (`conversations.choose_thread`: linked by a Message-ID and the same RFC 5256 base subject, merging
   into the oldest thread), which gives the groups of emails the threads should be.
3. Match: each group keeps the existing thread id holding most of its emails (largest overlaps
   first, each old thread used once), so unchanged or mostly unchanged conversations keep their
   ids; the other groups get new threads, and old threads left without emails are destroyed.
4. Apply, in short write transactions (a few hundred emails each) so a running server keeps serving:
   inside each, the emails are read again (an email destroyed since the scan is left out, one that
   arrived since keeps the thread live ingest gave it), moved, and every touched thread gets its
   Message-IDs and per-mailbox summaries (`counts.py`) recomputed from its members. The change log
   records Email updated (threadId), Thread created/updated/destroyed and Mailbox count updates,
   so clients resynchronise through /changes.
5. Check: every thread's per-mailbox summary is refreshed and every mailbox's counters compared with
   a count of its rows, in batches; any drift is corrected (and logged as a Mailbox update).

Each transaction leaves the store consistent (every email in exactly one thread, counts exact), so
the rebuild can be interrupted at any point and run again; a second run over a store nobody changed
finds nothing to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..mime import base_subject, parse_message
from ..store.base import Store, Transaction
from .conversations import choose_thread, linked_message_ids
from .counts import CountChanges
from .ids import EMAIL, MAILBOX, THREAD, to_wire
from .ingest import trash_mailbox

SCAN_CHUNK = 500
HEAD = 65536
APPLY_EMAILS = 300
CHECK_THREADS = 300

Say = Callable[[str], None]


def header_section(raw: bytes) -> bytes:
    """The header fields of a message (threading needs nothing else), ending with the empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


def thread_keys(raw: bytes) -> tuple[list[str], str]:
    """(Message-IDs the message mentions, its base subject), as ingest derives them."""
    parsed = parse_message(header_section(raw))
    return (linked_message_ids(parsed.message_id, parsed.in_reply_to, parsed.references),
            base_subject(parsed.subject or ""))


@dataclass
class Scanned:
    email_id: int
    received_at: int
    thread_id: int
    blob_id: str
    msgids: list[str] = field(default_factory=list)
    base: str = ""
    readable: bool = True


@dataclass
class Group:
    """A thread as the replay computes it."""

    number: int
    base: str
    members: list[int] = field(default_factory=list)
    msgids: set[str] = field(default_factory=set)
    target: int | None = None  # the existing thread id it keeps, if any


@dataclass
class RebuildReport:
    account_id: str
    emails: int = 0
    threads_before: int = 0
    threads_after: int = 0
    created: int = 0
    merged: int = 0
    split: int = 0
    destroyed: int = 0
    moved: int = 0
    index_refreshed: int = 0
    counts_fixed: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.merged or self.split or self.destroyed or self.moved
                    or self.index_refreshed or self.counts_fixed)

    def summary(self) -> str:
        return (
            f"account {self.account_id}: {self.emails} emails, {self.threads_before} threads before,"
            f" {self.threads_after} after; {self.created} created, {self.merged} merged, {self.split} split,"
            f" {self.destroyed} destroyed, {self.moved} emails moved; index refreshed for"
            f" {self.index_refreshed} threads; {self.counts_fixed} mailbox counters corrected"
        )


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _names(prefix: str, numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(to_wire(prefix, n) for n in numbers[:limit])
    return shown + (f", … ({len(numbers)} in all)" if len(numbers) > limit else "")


class Rebuild:
    def __init__(self, store: Store, account_id: str, say: Say | None = None) -> None:
        self.store = store
        self.account_id = account_id
        self.say: Say = say or (lambda line: None)
        self.report = RebuildReport(account_id)
        self.scanned: dict[int, Scanned] = {}

    # 1. scan

    def scan(self) -> list[Scanned]:
        with self.store.read(self.account_id) as tx:
            ids = tx.emails.all_ids()
        entries: list[Scanned] = []
        for chunk in _chunks(ids, SCAN_CHUNK):
            with self.store.read(self.account_id) as tx:
                rows = tx.emails.rows(chunk)
            entries.extend(Scanned(r.id, r.received_at, r.thread_id, r.blob_id) for r in rows.values())
        entries.sort(key=lambda e: (e.received_at, e.email_id))
        for entry in entries:
            raw = self._head(entry.blob_id)
            if raw is None:
                entry.readable = False
                self.report.unreadable.append((to_wire(EMAIL, entry.email_id), f"blob {entry.blob_id} is missing"))
                continue
            entry.msgids, entry.base = thread_keys(raw)
        self.scanned = {e.email_id: e for e in entries}
        self.report.emails = len(entries)
        self.report.threads_before = len({e.thread_id for e in entries})
        return entries

    def _head(self, blob_id: str) -> bytes | None:
        """The start of a raw message, enough for its header (threading needs nothing else)."""
        handle = self.store.blobs.open(blob_id)
        if handle is None:
            return None
        with handle:
            data = handle.read(HEAD)
            while len(data) % HEAD == 0 and data and b"\n\n" not in data and b"\r\n\r\n" not in data:
                more = handle.read(HEAD)
                if not more:
                    break
                data += more
        return data

    # 2. replay

    @staticmethod
    def replay(entries: list[Scanned]) -> list[Group]:
        """Thread the messages again, in order, with the live rule; returns the surviving groups."""
        groups: list[Group] = []
        alive: dict[int, Group] = {}
        known: dict[str, set[int]] = {}
        for entry in entries:
            if not entry.readable:
                continue
            found = [(m, g, groups[g].base) for m in entry.msgids for g in known.get(m, ())]
            candidates = choose_thread(found, entry.base)
            if not candidates:
                group = Group(len(groups), entry.base)
                groups.append(group)
                alive[group.number] = group
            else:
                group = groups[candidates[0]]
                for other_number in candidates[1:]:
                    other = alive.pop(other_number)
                    group.members.extend(other.members)
                    for msgid in other.msgids:
                        known[msgid].discard(other_number)
                        known[msgid].add(group.number)
                    group.msgids |= other.msgids
            group.members.append(entry.email_id)
            for msgid in entry.msgids:
                known.setdefault(msgid, set()).add(group.number)
                group.msgids.add(msgid)
        return list(alive.values())

    # 3. match

    def match(self, groups: list[Group]) -> None:
        overlap: Counter[tuple[int, int]] = Counter()
        for group in groups:
            for email_id in group.members:
                overlap[(group.number, self.scanned[email_id].thread_id)] += 1
        taken: set[int] = set()
        by_number = {g.number: g for g in groups}
        for (number, thread_id), _count in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
            group = by_number[number]
            if group.target is None and thread_id not in taken:
                group.target = thread_id
                taken.add(thread_id)

    # 4. apply

    def _keys(self, tx: Transaction, email_id: int) -> list[str]:
        entry = self.scanned.get(email_id)
        if entry is not None:
            return entry.msgids
        # Arrived after the scan: read it now (its thread came from live ingest).
        rows = tx.emails.rows([email_id])
        raw = self.store.blobs.read(rows[email_id].blob_id) if email_id in rows else None
        return thread_keys(raw)[0] if raw is not None else []

    def apply(self, groups: list[Group]) -> None:
        old_members: dict[int, list[int]] = {}
        for entry in self.scanned.values():
            if entry.readable:
                old_members.setdefault(entry.thread_id, []).append(entry.email_id)
        changed = [g for g in groups if g.target is None or sorted(g.members) != sorted(old_members.get(g.target, []))]
        # Describe what will change (from the scan; the transactions below re-check).
        destinations: dict[int, set[int]] = {}
        for group in groups:
            for email_id in group.members:
                destinations.setdefault(self.scanned[email_id].thread_id, set()).add(group.number)
        for thread_id, numbers in sorted(destinations.items()):
            if len(numbers) > 1:
                self.report.split += 1
                self.say(f"  thread {to_wire(THREAD, thread_id)}: split in {len(numbers)} conversations")
        batch: list[Group] = []
        size = 0
        for group in changed:
            batch.append(group)
            size += len(group.members)
            if size >= APPLY_EMAILS:
                self._apply_batch(batch)
                batch, size = [], 0
        if batch:
            self._apply_batch(batch)
        self._refresh_index([g for g in groups if g not in changed])

    def _apply_batch(self, batch: list[Group]) -> None:
        report = self.report
        with self.store.write(self.account_id) as tx:
            counts = CountChanges()
            trash = trash_mailbox(tx)
            touched: dict[int, str | None] = {}  # thread -> its base subject when a group owns it
            created: set[int] = set()
            for group in batch:
                current = tx.emails.rows(group.members)  # re-check: destroyed since the scan?
                if not current:
                    continue
                target = group.target
                if target is not None and not tx.emails.thread_index([target]):
                    target = None
                if target is None:
                    target = tx.emails.new_thread(group.base)
                    created.add(target)
                    report.created += 1
                moving = sorted(e for e, row in current.items() if row.thread_id != target)
                sources = sorted({current[e].thread_id for e in moving})
                if moving:
                    tx.emails.set_thread(moving, target)
                    for email_id in moving:
                        tx.record("Email", to_wire(EMAIL, email_id), "updated")
                    report.moved += len(moving)
                if len(sources) + (target not in created) > 1:
                    report.merged += 1
                self._describe(target, target in created, sources, moving, len(current))
                touched[target] = group.base
                for source in sources:
                    touched.setdefault(source, None)
            subjects = tx.emails.thread_index(sorted(touched))
            for thread_id in sorted(touched):
                members = tx.emails.thread_email_ids([thread_id]).get(thread_id, [])
                counts.refresh_thread(tx, thread_id, trash)
                if not members:
                    tx.emails.delete_thread(thread_id)
                    tx.record("Thread", to_wire(THREAD, thread_id), "destroyed")
                    report.destroyed += 1
                    self.say(f"  thread {to_wire(THREAD, thread_id)}: destroyed (no emails left)")
                    continue
                msgids: dict[str, None] = {}
                for email_id in members:
                    msgids.update(dict.fromkeys(self._keys(tx, email_id)))
                base = touched[thread_id]
                if base is None:
                    base = subjects.get(thread_id, ("", frozenset()))[0]
                tx.emails.reset_thread(thread_id, base, list(msgids))
                tx.record("Thread", to_wire(THREAD, thread_id), "created" if thread_id in created else "updated")
            counts.log(tx)

    def _describe(self, target: int, created: bool, sources: list[int], moving: list[int], size: int) -> None:
        name = to_wire(THREAD, target)
        if created:
            self.say(f"  thread {name}: created with {size} emails from {_names(THREAD, sources)}"
                     f" ({_names(EMAIL, moving)})")
        elif moving:
            self.say(f"  thread {name}: {len(moving)} emails joined from {_names(THREAD, sources)}"
                     f" ({_names(EMAIL, moving)})")

    def _refresh_index(self, unchanged: list[Group]) -> None:
        """Threads whose emails did not change: make their Message-IDs and base subject exact."""
        by_target = {g.target: g for g in unchanged if g.target is not None}
        targets = sorted(by_target)
        for chunk in _chunks(targets, CHECK_THREADS):
            with self.store.read(self.account_id) as tx:
                index = tx.emails.thread_index(chunk)
            stale = [t for t in chunk if t in index
                     and index[t] != (by_target[t].base, frozenset(by_target[t].msgids))]
            if not stale:
                continue
            with self.store.write(self.account_id) as tx:
                members = tx.emails.thread_email_ids(stale)
                for thread_id in stale:
                    group = by_target[thread_id]
                    if sorted(members.get(thread_id, [])) != sorted(group.members):
                        continue  # changed since the scan; live ingest keeps it consistent
                    tx.emails.reset_thread(thread_id, group.base, sorted(group.msgids))
                    self.report.index_refreshed += 1

    # 5. check

    def check_counts(self) -> None:
        with self.store.read(self.account_id) as tx:
            thread_ids = tx.emails.all_thread_ids()
        for chunk in _chunks(thread_ids, CHECK_THREADS):
            with self.store.write(self.account_id) as tx:
                counts = CountChanges()
                trash = trash_mailbox(tx)
                for thread_id in chunk:
                    counts.refresh_thread(tx, thread_id, trash)
                self.report.counts_fixed += len(counts.mailboxes)
                counts.log(tx)
        with self.store.read(self.account_id) as tx:
            mailbox_ids = [m.id for m in tx.mailboxes.all()]
        for mailbox_id in mailbox_ids:
            with self.store.write(self.account_id) as tx:
                row = tx.mailboxes.get(mailbox_id)
                if row is None:
                    continue
                actual = tx.emails.recount(mailbox_id)
                kept = (row.total_emails, row.unread_emails, row.total_threads, row.unread_threads)
                if actual != kept:
                    tx.emails.adjust_counts(mailbox_id, *(a - k for a, k in zip(actual, kept, strict=True)))
                    tx.record("Mailbox", to_wire(MAILBOX, mailbox_id), "updated", counts_only=True)
                    self.report.counts_fixed += 1
                    self.say(f"  mailbox {to_wire(MAILBOX, mailbox_id)}: counts {kept} corrected to {actual}")
        with self.store.read(self.account_id) as tx:
            self.report.threads_after = len(tx.emails.all_thread_ids())

    def run(self) -> RebuildReport:
        entries = self.scan()
        groups = self.replay(entries)
        self.match(groups)
        self.apply(groups)
        self.check_counts()
        for email_id, reason in self.report.unreadable:
            self.say(f"  email {email_id}: left in its thread: {reason}")
        return self.report


def rebuild(store: Store, account_id: str, say: Say | None = None) -> RebuildReport:
    """Recompute every thread of an account from its raw messages; see the module docstring."""
    return Rebuild(store, account_id, say).run()
