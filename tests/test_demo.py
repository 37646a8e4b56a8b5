"""The demo mailbox: generated once through the ingest path, deterministic, never delivered twice."""

from __future__ import annotations

from tidings.demo import fill, generate
from tidings.mime import parse_message
from tidings.server import Tidings

NOW = 1_800_000_000


def test_generation_is_deterministic_and_realistic() -> None:
    messages = generate("demo@localhost", NOW)
    assert messages == generate("demo@localhost", NOW)
    assert len(messages) >= 40
    assert all(NOW - 40 * 86400 < m.received_at < NOW for m in messages)
    parsed = [parse_message(m.raw) for m in messages]
    # Replies carry In-Reply-To, some messages have attachments or an HTML part, some are unread.
    assert sum(1 for p in parsed if p.in_reply_to) >= 15
    assert sum(1 for p in parsed if p.has_attachment) >= 4
    assert any(p.html_body and p.html_body != p.text_body for p in parsed)
    assert any("$seen" not in m.keywords for m in messages)
    assert {m.role for m in messages} >= {"inbox", "sent", "archive", "drafts", "junk"}


def test_fill_delivers_once_into_the_right_mailboxes(tidings: Tidings) -> None:
    user = next(u for u in tidings.accounts.users() if u.username == "alice")
    added = fill(tidings.store, user.account_id, user.address, NOW)
    assert added == len(generate(user.address, NOW))
    # A restart of the demo adds nothing, even after the account changed.
    assert fill(tidings.store, user.account_id, user.address, NOW) == 0
    with tidings.store.read(user.account_id) as tx:
        boxes = {row.role: row for row in tx.mailboxes.all()}
        assert sum(row.total_emails for row in boxes.values()) == added
        assert boxes["inbox"].total_emails > boxes["inbox"].total_threads  # conversations are threaded
        assert boxes["inbox"].unread_emails > 0
        assert boxes["sent"].total_emails > 0 and boxes["drafts"].total_emails == 1


def test_an_account_that_ever_held_mail_is_left_alone(tidings: Tidings) -> None:
    user = next(u for u in tidings.accounts.users() if u.username == "bob")
    fill(tidings.store, user.account_id, user.address, NOW)
    with tidings.store.write(user.account_id) as tx:
        for email_id in tx.emails.all_ids():
            tx.emails.delete(email_id)
    assert fill(tidings.store, user.account_id, user.address, NOW) == 0
