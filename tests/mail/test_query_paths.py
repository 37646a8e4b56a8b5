"""The store's fast query paths give what the general query gives (the general one also counts)."""

from __future__ import annotations

import pytest

from tidings.mail.ingest import ingest, prepare
from tidings.server import Tidings
from tidings.store.base import EmailSort


def message(i: int) -> bytes:
    thread = i % 7
    lines = [f"From: Person {i} <p{i}@example.org>", "To: Ann <ann@example.org>",
             f"Subject: {'Re: ' if i >= 7 else ''}Topic {thread}", f"Message-ID: <m{i}@x>"]
    if i >= 7:
        lines += [f"In-Reply-To: <m{i - 7}@x>", f"References: <m{i - 7}@x>"]
    words = ["apple" if i % 3 == 0 else "pear", "banana" if i % 4 == 0 else "kiwi", "common"]
    return ("\r\n".join(lines) + "\r\n\r\n" + " ".join(words) + f" number{i}\r\n").encode()


@pytest.mark.parametrize("word", ["apple", "banana", "common", "nothing", "num"])
def test_text_search_fast_path_matches_the_general_query(tidings: Tidings, word: str) -> None:
    with tidings.store.directory() as directory:
        user = directory.user("alice")
    assert user is not None
    with tidings.store.write(user.account_id) as tx:
        inbox = next(m.id for m in tx.mailboxes.all() if m.role == "inbox")
        for i in range(60):
            # receivedAt not in id order, with ties, to exercise the sort
            ingest(tx, prepare(tidings.store.blobs, message(i)), {inbox}, frozenset(), 10_000 - (i * 37) % 50)
    with tidings.store.read(user.account_id) as tx:
        for ascending in (False, True):
            for collapse in (False, True):
                for position, limit in ((0, 5), (3, 4), (0, 100), (40, 10)):
                    sort = [EmailSort("receivedAt", ascending)]
                    text = ("text", [(False, word)])
                    fast, at, total = tx.emails.query(text, sort, collapse, position, limit, None, 0, False)
                    general, _, count = tx.emails.query(text, sort, collapse, position, limit, None, 0, True)
                    assert (fast, at, total) == (general, position, None), (ascending, collapse, position)
                    assert count is not None and len(fast) == max(0, min(limit, count - position))
