"""The conversations index: which Thread a message belongs to (RFC 8621 §3; RFC 5256 base subject).

A message joins the thread of any message it is linked to by Message-ID, In-Reply-To or References,
provided its base subject (RFC 5256 §2.1) is the thread's: a reply that changes the subject starts a
new thread, as Cyrus's conversations do. Every Message-ID a message mentions is remembered for its
thread, so a parent arriving after its reply finds the reply's thread. When a message links two or
more threads, they merge into the oldest: its emails move (their threadId changes and is reported as
an Email update) and the others are destroyed. No email is ever lost on the way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..mime import base_subject
from ..store.base import Transaction
from .ids import EMAIL, THREAD, to_wire


@dataclass
class ThreadAssignment:
    thread_id: int
    created: bool
    # Threads merged into thread_id, and the emails that moved with them.
    merged_threads: list[int] = field(default_factory=list)
    moved_emails: list[int] = field(default_factory=list)


def linked_message_ids(message_id: list[str] | None, in_reply_to: list[str] | None,
                       references: list[str] | None) -> list[str]:
    seen: dict[str, None] = {}
    for group in (message_id, in_reply_to, references):
        for msgid in group or ():
            if msgid and len(msgid) < 1000:
                seen.setdefault(msgid, None)
    return list(seen)


def choose_thread(known: Iterable[tuple[str, int, str]], base: str) -> list[int]:
    """The rule, shared by live ingest and `mail/rebuild.py`: of the threads that know one of a
    message's Message-IDs, those whose base subject is the message's, oldest (lowest id) first. The
    message joins the first and the others merge into it; an empty list starts a new thread."""
    return sorted({thread_id for _msgid, thread_id, thread_subject in known if thread_subject == base})


def assign_thread(tx: Transaction, msgids: list[str], subject: str | None) -> ThreadAssignment:
    base = base_subject(subject or "")
    candidates = choose_thread(tx.emails.threads_for_msgids(msgids), base)
    if not candidates:
        thread_id = tx.emails.new_thread(base)
        tx.emails.add_thread_refs(thread_id, msgids)
        return ThreadAssignment(thread_id, created=True)
    target, others = candidates[0], candidates[1:]
    assignment = ThreadAssignment(target, created=False)
    for other in others:
        moved = tx.emails.thread_email_ids([other]).get(other, [])
        tx.emails.set_thread(moved, target)
        tx.emails.move_thread_refs(other, target)
        # The emptied thread row stays until the caller has moved its per-mailbox summaries and counts
        # (mailbox_threads rows reference it); ingest deletes it then.
        assignment.merged_threads.append(other)
        assignment.moved_emails.extend(moved)
        for email_id in moved:
            tx.record("Email", to_wire(EMAIL, email_id), "updated")
        tx.record("Thread", to_wire(THREAD, other), "destroyed")
    tx.emails.add_thread_refs(target, msgids)
    return assignment
