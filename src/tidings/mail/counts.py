"""Mailbox counts (RFC 8621 §2), maintained on every change rather than recounted.

totalEmails/unreadEmails move by per-email deltas. totalThreads/unreadThreads are kept through one
summary row per (mailbox, thread): after any change to a thread, its rows are recomputed from the
thread's members (threads are small) and the counters move by the difference.

unreadThreads follows the "quality implementation" of RFC 8621 §2: a thread counts as unread in a
mailbox when it has an email in that mailbox and any unread email at all, except that emails only in
the trash are ignored for other mailboxes, and emails not in the trash are ignored for the trash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store.base import MailboxThread, ThreadMember, Transaction
from .ids import MAILBOX, to_wire


def is_unread(keywords: frozenset[str]) -> bool:
    return "$seen" not in keywords and "$draft" not in keywords


@dataclass
class CountChanges:
    """The counter moves of one operation (or of a batch of them), per mailbox: applied with one
    UPDATE per mailbox and logged once each by `log`, which every user calls at the end."""

    mailboxes: set[int] = field(default_factory=set)
    # mailbox id -> [emails, unread emails, threads, unread threads], still to be applied.
    deltas: dict[int, list[int]] = field(default_factory=dict)

    def _move(self, mailbox_id: int, emails: int, unread: int, threads: int, unread_threads: int) -> None:
        delta = self.deltas.setdefault(mailbox_id, [0, 0, 0, 0])
        delta[0] += emails
        delta[1] += unread
        delta[2] += threads
        delta[3] += unread_threads
        self.mailboxes.add(mailbox_id)

    def email_delta(
        self,
        tx: Transaction,
        before: frozenset[int],
        unread_before: bool,
        after: frozenset[int],
        unread_after: bool,
    ) -> None:
        for mailbox_id in before | after:
            total = int(mailbox_id in after) - int(mailbox_id in before)
            unread = int(mailbox_id in after and unread_after) - int(mailbox_id in before and unread_before)
            if total or unread:
                self._move(mailbox_id, total, unread, 0, 0)

    def refresh_thread(self, tx: Transaction, thread_id: int, trash_id: int | None) -> None:
        members = tx.emails.thread_members(thread_id)
        wanted = summarise(thread_id, members, trash_id)
        existing = tx.emails.mailbox_threads(thread_id)
        for mailbox_id in set(wanted) | set(existing):
            new = wanted.get(mailbox_id)
            old = existing.get(mailbox_id)
            if new == old:
                continue
            threads = int(new is not None) - int(old is not None)
            unread = int(bool(new and new.unread)) - int(bool(old and old.unread))
            if new is None:
                tx.emails.delete_mailbox_thread(mailbox_id, thread_id)
            else:
                tx.emails.put_mailbox_thread(new)
            if threads or unread:
                self._move(mailbox_id, 0, 0, threads, unread)

    def log(self, tx: Transaction) -> None:
        """Apply the counter moves and record each mailbox whose counts moved, once."""
        for mailbox_id, delta in sorted(self.deltas.items()):
            if any(delta):
                tx.emails.adjust_counts(mailbox_id, *delta)
        for mailbox_id in sorted(self.mailboxes):
            tx.record("Mailbox", to_wire(MAILBOX, mailbox_id), "updated", counts_only=True)
        self.mailboxes.clear()
        self.deltas.clear()


def summarise(thread_id: int, members: list[ThreadMember], trash_id: int | None) -> dict[int, MailboxThread]:
    """The (mailbox, thread) summary rows a thread should have."""
    unread_outside_trash = any(
        is_unread(m.keywords) and m.mailbox_ids != frozenset({trash_id}) for m in members
    )
    unread_in_trash = any(is_unread(m.keywords) and trash_id in m.mailbox_ids for m in members)
    rows: dict[int, MailboxThread] = {}
    for member in members:  # ordered by (receivedAt, id)
        for mailbox_id in member.mailbox_ids:
            row = rows.get(mailbox_id)
            if row is None:
                unread = unread_in_trash if mailbox_id == trash_id else unread_outside_trash
                rows[mailbox_id] = MailboxThread(
                    mailbox_id, thread_id, member.received_at, member.id, member.received_at, member.id, unread
                )
            else:
                rows[mailbox_id] = MailboxThread(
                    mailbox_id, thread_id, member.received_at, member.id, row.oldest_at, row.oldest_id, row.unread
                )
    return rows
