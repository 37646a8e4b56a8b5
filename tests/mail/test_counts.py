"""Unit tests of the per-(mailbox, thread) summaries behind exact Mailbox counts (RFC 8621 §2)."""

from __future__ import annotations

from tidings.mail.counts import is_unread, summarise
from tidings.store.base import ThreadMember

INBOX, ARCHIVE, TRASH = 1, 2, 9
SEEN = frozenset({"$seen"})
UNREAD: frozenset[str] = frozenset()


def member(email_id: int, at: int, keywords: frozenset[str], *mailboxes: int) -> ThreadMember:
    return ThreadMember(email_id, at, keywords, frozenset(mailboxes))


def unread_by_mailbox(*members: ThreadMember) -> dict[int, bool]:
    return {m: row.unread for m, row in summarise(7, list(members), TRASH).items()}


def test_unread_means_neither_seen_nor_draft() -> None:
    assert is_unread(frozenset()) and is_unread(frozenset({"$flagged"}))
    assert not is_unread(frozenset({"$seen"})) and not is_unread(frozenset({"$draft"}))


def test_the_rfc_example_unread_in_trash_read_in_inbox() -> None:
    # RFC 8621 §2: unreadThreads is 1 for the trash and 0 for the inbox.
    assert unread_by_mailbox(member(1, 10, UNREAD, TRASH), member(2, 20, SEEN, INBOX)) == {TRASH: True, INBOX: False}


def test_unread_email_elsewhere_in_the_thread_counts() -> None:
    # The unread email need not be the one in this mailbox.
    assert unread_by_mailbox(member(1, 10, UNREAD, ARCHIVE), member(2, 20, SEEN, INBOX)) == {
        ARCHIVE: True, INBOX: True}


def test_email_in_trash_and_elsewhere_counts_for_both() -> None:
    assert unread_by_mailbox(member(1, 10, UNREAD, TRASH, INBOX), member(2, 20, SEEN, ARCHIVE)) == {
        TRASH: True, INBOX: True, ARCHIVE: True}


def test_read_email_in_trash_does_not_make_trash_unread() -> None:
    assert unread_by_mailbox(member(1, 10, SEEN, TRASH), member(2, 20, UNREAD, INBOX)) == {
        TRASH: False, INBOX: True}


def test_newest_and_oldest_per_mailbox() -> None:
    rows = summarise(7, [member(1, 10, SEEN, INBOX), member(2, 20, SEEN, ARCHIVE), member(3, 30, SEEN, INBOX)],
                     TRASH)
    assert (rows[INBOX].oldest_id, rows[INBOX].newest_id) == (1, 3)
    assert (rows[INBOX].oldest_at, rows[INBOX].newest_at) == (10, 30)
    assert (rows[ARCHIVE].oldest_id, rows[ARCHIVE].newest_id) == (2, 2)


def test_no_trash_mailbox() -> None:
    rows = summarise(7, [member(1, 10, UNREAD, INBOX)], None)
    assert rows[INBOX].unread is True
