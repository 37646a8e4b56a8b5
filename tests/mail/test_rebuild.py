"""`tidings conversations rebuild`: threads recomputed from the raw messages, safely, with a change log."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tidings.cli import main
from tidings.mail.conversations import linked_message_ids
from tidings.mail.ingest import ingest, prepare
from tidings.mail.rebuild import Rebuild, header_section, rebuild, thread_keys
from tidings.mime import base_subject, parse_message
from tidings.server import Tidings

from ..helpers import LiveServer


def raw(subject: str, msgid: str, *refs: str) -> bytes:
    lines = ["From: Ann <ann@example.org>", "To: Ben <ben@example.org>", f"Subject: {subject}",
             "Date: Tue, 01 Feb 2022 10:00:00 +0000", f"Message-ID: <{msgid}>"]
    if refs:
        lines += [f"In-Reply-To: <{refs[-1]}>", "References: " + " ".join(f"<{r}>" for r in refs)]
    return ("\r\n".join(lines) + "\r\n\r\nBody of " + msgid + "\r\n").encode()


def account(tidings: Tidings) -> str:
    with tidings.store.directory() as directory:
        user = directory.user("alice")
    assert user is not None
    return user.account_id


def deliver(tidings: Tidings, account_id: str, messages: list[tuple[bytes, int]], seen: bool = False) -> list[int]:
    ids = []
    with tidings.store.write(account_id) as tx:
        inbox = next(m.id for m in tx.mailboxes.all() if m.role == "inbox")
        for data, when in messages:
            keywords = frozenset({"$seen"}) if seen else frozenset()
            ids.append(ingest(tx, prepare(tidings.store.blobs, data), {inbox}, keywords, when).id)
    return ids


def threads(tidings: Tidings, account_id: str) -> dict[int, int]:
    with tidings.store.read(account_id) as tx:
        return {r.id: r.thread_id for r in tx.emails.rows(tx.emails.all_ids()).values()}


def grouping(tidings: Tidings, account_id: str) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for email, thread in threads(tidings, account_id).items():
        groups.setdefault(thread, set()).add(email)
    return {frozenset(g) for g in groups.values()}


def counts(tidings: Tidings, account_id: str) -> dict[int, tuple[int, int, int, int]]:
    with tidings.store.read(account_id) as tx:
        return {m.id: (m.total_emails, m.unread_emails, m.total_threads, m.unread_threads)
                for m in tx.mailboxes.all()}


def recounted(tidings: Tidings, account_id: str) -> dict[int, tuple[int, int, int, int]]:
    with tidings.store.read(account_id) as tx:
        return {m.id: tx.emails.recount(m.id) for m in tx.mailboxes.all()}


def states(tidings: Tidings, account_id: str) -> dict[str, str]:
    with tidings.store.read(account_id) as tx:
        return tx.all_states()


@pytest.fixture
def conversation(tidings: Tidings) -> tuple[str, list[int]]:
    """a; b replies to a; c replies to b; d unrelated; e replies to a with another subject."""
    acc = account(tidings)
    ids = deliver(tidings, acc, [
        (raw("Plans", "a@x"), 1000),
        (raw("Re: Plans", "b@x", "a@x"), 2000),
        (raw("RE: [team] Plans", "c@x", "a@x", "b@x"), 3000),
        (raw("Lunch", "d@x"), 4000),
        (raw("Something else", "e@x", "a@x"), 5000),
    ])
    return acc, ids


def sql(tidings: Tidings) -> sqlite3.Connection:
    return sqlite3.connect(Path(tidings.config.data_dir) / "tidings.sqlite3", isolation_level=None)


def test_keys_from_headers_only_match_a_full_parse() -> None:
    data = raw("Re: Fwd: [list] Topic (fwd)", "z@x", "p@x", "q@x") + b"\r\nmore\r\n\r\nbody\r\n"
    full = parse_message(data)
    assert header_section(data).endswith(b"\r\n\r\n")
    assert thread_keys(data) == (
        linked_message_ids(full.message_id, full.in_reply_to, full.references), base_subject(full.subject or ""))


@pytest.mark.sqlite_only  # corrupts rows through SQLite directly
def test_a_correct_store_is_left_alone(tidings: Tidings, conversation: tuple[str, list[int]]) -> None:
    acc, _ids = conversation
    before = (threads(tidings, acc), counts(tidings, acc), states(tidings, acc))
    lines: list[str] = []
    report = rebuild(tidings.store, acc, lines.append)
    assert not report.changed, report
    assert lines == []
    assert (report.emails, report.threads_before, report.threads_after) == (5, 3, 3)
    assert (threads(tidings, acc), counts(tidings, acc), states(tidings, acc)) == before


@pytest.mark.sqlite_only
def test_corrupt_assignments_are_repaired(tidings: Tidings, conversation: tuple[str, list[int]]) -> None:
    acc, (a, b, c, d, e) = conversation
    expected = grouping(tidings, acc)
    assert expected == {frozenset({a, b, c}), frozenset({d}), frozenset({e})}
    plans = threads(tidings, acc)[a]
    lunch = threads(tidings, acc)[d]
    before = states(tidings, acc)
    with sql(tidings) as db:
        # b wrongly in the lunch thread; c alone in a thread of its own (a split)
        db.execute("UPDATE emails SET thread_id = ? WHERE id = ?", (lunch, b))
        stray = db.execute("INSERT INTO threads (account_id, base_subject) SELECT account_id, 'Plans' FROM threads"
                           " WHERE id = ?", (plans,)).lastrowid
        db.execute("UPDATE emails SET thread_id = ? WHERE id = ?", (stray, c))
    lines: list[str] = []
    report = rebuild(tidings.store, acc, lines.append)
    assert grouping(tidings, acc) == expected
    after = threads(tidings, acc)
    assert after[a] == plans and after[d] == lunch  # the ids of the conversations that were mostly right
    assert report.moved == 2 and report.destroyed == 1 and report.created == 0
    assert report.split == 1  # the lunch thread held two conversations
    assert any("destroyed" in line for line in lines)
    assert counts(tidings, acc) == recounted(tidings, acc)
    inbox = next(m for m, c in counts(tidings, acc).items() if c[0])
    assert counts(tidings, acc)[inbox] == (5, 5, 3, 3)
    # Clients catch up through /changes.
    with tidings.store.read(acc) as tx:
        email_changes = tx.changes("Email", before["Email"], 100)
        thread_changes = tx.changes("Thread", before["Thread"], 100)
    assert email_changes is not None and thread_changes is not None
    assert set(email_changes.updated) == {f"E{b}", f"E{c}"}
    assert set(thread_changes.destroyed) == {f"T{stray}"}
    assert {f"T{plans}", f"T{lunch}"} <= set(thread_changes.updated)
    # New mail still finds the right thread (the Message-ID index was rebuilt too).
    (late,) = deliver(tidings, acc, [(raw("Re: Plans", "f@x", "c@x"), 6000)])
    assert threads(tidings, acc)[late] == plans
    assert not rebuild(tidings.store, acc).changed


@pytest.mark.sqlite_only
def test_out_of_order_threads_merge(tidings: Tidings) -> None:
    """A store where a, b and c never got linked (say, an old bug): the rebuild merges them."""
    acc = account(tidings)
    a, b, c = deliver(tidings, acc, [(raw("Trip", "a@x"), 1000), (raw("Re: Trip", "b@x", "a@x"), 2000),
                                     (raw("Re: Trip", "c@x", "a@x", "b@x"), 3000)])
    with sql(tidings) as db:
        for email in (b, c):
            thread = db.execute("INSERT INTO threads (account_id, base_subject) VALUES (1, 'Trip')").lastrowid
            db.execute("UPDATE emails SET thread_id = ? WHERE id = ?", (thread, email))
            db.execute("DELETE FROM thread_refs WHERE account_id = 1")
        db.execute("DELETE FROM mailbox_threads")
        db.execute("UPDATE mailboxes SET total_threads = 0, unread_threads = 0")
        db.execute("UPDATE mailboxes SET total_emails = 42 WHERE role = 'inbox'")  # a drifted counter
    report = rebuild(tidings.store, acc)
    assert grouping(tidings, acc) == {frozenset({a, b, c})}
    assert report.merged == 1 and report.destroyed == 2 and report.moved == 2
    assert counts(tidings, acc) == recounted(tidings, acc)
    assert report.counts_fixed >= 1
    assert not rebuild(tidings.store, acc).changed


@pytest.mark.sqlite_only
def test_missing_blob_is_reported_and_kept(tidings: Tidings, conversation: tuple[str, list[int]]) -> None:
    acc, (a, *_rest) = conversation
    with tidings.store.read(acc) as tx:
        blob = tx.emails.rows([a])[a].blob_id
    tidings.store.blobs.path(blob).unlink()
    before = threads(tidings, acc)
    report = rebuild(tidings.store, acc)
    assert report.unreadable == [(f"E{a}", f"blob {blob} is missing")]
    assert threads(tidings, acc) == before  # b and c still link to each other and a's thread


def test_replay_uses_the_live_rule() -> None:
    from tidings.mail.rebuild import Scanned

    entries = [
        Scanned(3, 30, 0, "", ["c@x", "b@x"], "Topic"),  # c links b, which has not arrived yet
        Scanned(1, 10, 0, "", ["a@x"], "Topic"),
        Scanned(2, 20, 0, "", ["b@x", "a@x"], "Topic"),  # b links a and (through c's refs) c
        Scanned(4, 40, 0, "", ["d@x", "a@x"], "Other"),  # a reply that changed the subject
    ]
    entries.sort(key=lambda e: (e.received_at, e.email_id))
    groups = Rebuild.replay(entries)
    assert sorted(sorted(g.members) for g in groups) == [[1, 2, 3], [4]]


@pytest.mark.sqlite_only
def test_rebuild_while_serving(server: LiveServer, tidings: Tidings) -> None:
    acc = account(tidings)
    ids = deliver(tidings, acc, [(raw(f"Topic {i % 20}", f"m{i}@x", *([f"m{i - 20}@x"] if i >= 20 else [])),
                                  1000 + i) for i in range(400)])
    expected = grouping(tidings, acc)
    with sql(tidings) as db:  # scatter every thread's replies
        for i, email in enumerate(ids[20:]):
            db.execute("UPDATE emails SET thread_id = (SELECT thread_id FROM emails WHERE id = ?) WHERE id = ?",
                       (ids[(i * 7) % 20], email))
    client = server.client("alice", "secret")
    inbox = next(m["id"] for m in client.ok("Mailbox/get", {})["list"] if m["role"] == "inbox")
    errors: list[str] = []
    served = 0
    done = threading.Event()

    def browse() -> None:
        nonlocal served
        while not done.is_set():
            response = client.request([
                ["Email/query", {"accountId": client.account_id, "filter": {"inMailbox": inbox},
                                 "collapseThreads": True, "limit": 10, "calculateTotal": True}, "q"],
                ["Email/get", {"accountId": client.account_id, "properties": ["threadId", "subject"],
                               "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"],
            ])
            for name, args, _ in response["methodResponses"]:
                if name == "error":
                    errors.append(str(args))
            served += 1

    browser = threading.Thread(target=browse)
    browser.start()
    try:
        report = rebuild(tidings.store, acc)
    finally:
        done.set()
        browser.join(30)
    client.close()
    assert errors == []
    assert served > 0
    assert report.moved > 0
    assert grouping(tidings, acc) == expected
    assert counts(tidings, acc) == recounted(tidings, acc)


@pytest.mark.sqlite_only
def test_cli_rebuild(tidings: Tidings, conversation: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]) -> None:
    _acc, (_a, b, _c, d, _e) = conversation
    with sql(tidings) as db:
        db.execute("UPDATE emails SET thread_id = (SELECT thread_id FROM emails WHERE id = ?) WHERE id = ?",
                   (d, b))
    data = str(tidings.config.data_dir)
    assert main(["conversations", "rebuild", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "alice (A1):" in out and "bob (A2):" in out
    assert "1 emails moved" in out
    assert main(["conversations", "rebuild", "alice", "--data", data]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert main(["conversations", "rebuild", "nobody", "--data", data]) == 2
