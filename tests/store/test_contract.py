"""The storage contract (store/base.py), run against every backend (tests/stores.py picks them).

Each test opens a store with `open_store`, exactly as the server does; the PostgreSQL variant gets a
schema of its own in the session's throwaway database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.config import load
from tidings.server import open_store
from tidings.store.base import EmailRow, EmailSort, MailboxRow, QueueEntry, SchemaTooNew, SearchDocument, Store

from ..stores import POSTGRESQL, store_for


def _open(data: Path) -> Store:
    return open_store(load(None, {"data": str(data), "store": store_for(data)}, environ={}))


@pytest.fixture
def store(tmp_path: Path, store_backend: str) -> Iterator[Store]:
    instance = _open(tmp_path / "data")
    yield instance
    instance.close()


@pytest.fixture
def account(store: Store) -> str:
    with store.directory(write=True) as directory:
        return directory.add_user("alice", "alice@example.com", "hash").account_id


def _mailbox(store: Store, account: str, name: str = "Inbox") -> int:
    with store.write(account) as tx:
        pk = tx.mailboxes.insert(MailboxRow(0, name, None, None, 0, True))
        tx.record("Mailbox", f"M{pk}", "created")
    return pk


def _email(tx: object, mailbox: int, subject: str, *, received_at: int = 1000, sender: str = "") -> int:
    emails = tx.emails  # type: ignore[attr-defined]
    thread = emails.new_thread(subject)
    row = EmailRow(0, thread, "B" + "0" * 64, 100, received_at, None, frozenset(), False, subject, subject.lower(),
                   sender, sender.lower(), "", "", None, b"{}", None, frozenset({mailbox}))
    email_id: int = emails.insert(row)
    return email_id


# -- directory ----------------------------------------------------------------------------------


def test_users_tokens_and_accounts(store: Store) -> None:
    with store.directory(write=True) as directory:
        alice = directory.add_user("alice", "alice@example.com", "h1")
        bob = directory.add_user("bob", "bob@example.com", "h2")
        directory.add_token(alice.id, "digest", "phone")
    assert alice.account_id != bob.account_id
    with store.directory() as directory:
        found = directory.user_for_token("digest")
        assert found is not None and found.username == "alice"
        assert [u.username for u in directory.users()] == ["alice", "bob"]
        assert directory.user_by_address("ALICE@example.com") == alice
    assert store.account_exists(alice.account_id) and not store.account_exists("A999")
    with store.directory(write=True) as directory:
        assert directory.revoke_token(alice.id, "phone") == 1
        assert directory.remove_user("bob")
    assert not store.account_exists(bob.account_id)


# -- states, the change log, savepoints -----------------------------------------------------------


def test_states_and_changes(store: Store, account: str) -> None:
    with store.read(account) as tx:
        assert tx.state("Mailbox") == "0"
    first = _mailbox(store, account, "One")
    second = _mailbox(store, account, "Two")
    with store.read(account) as tx:
        state = tx.state("Mailbox")
        changes = tx.changes("Mailbox", "0", 10)
        assert changes is not None and changes.created == [f"M{first}", f"M{second}"]
        page = tx.changes("Mailbox", "0", 1)
        assert page is not None and page.has_more and page.created == [f"M{first}"]
    with store.write(account) as tx:
        tx.record("Mailbox", f"M{first}", "updated")
        tx.record("Mailbox", f"M{second}", "destroyed")
    with store.read(account) as tx:
        later = tx.changes("Mailbox", state, 10)
        assert later is not None
        assert (later.created, later.updated, later.destroyed) == ([], [f"M{first}"], [f"M{second}"])
        assert int(tx.state("Mailbox")) > int(state)
        assert tx.changes("Mailbox", "999", 10) is None
        assert tx.changed_since("Mailbox", state) == {f"M{first}", f"M{second}"}


def test_a_failed_savepoint_leaves_nothing(store: Store, account: str) -> None:
    with store.write(account) as tx:
        kept = tx.mailboxes.insert(MailboxRow(0, "Kept", None, None, 0, True))
        tx.record("Mailbox", f"M{kept}", "created")
        with pytest.raises(RuntimeError), tx.savepoint():
            gone = tx.mailboxes.insert(MailboxRow(0, "Gone", None, None, 0, True))
            tx.record("Mailbox", f"M{gone}", "created")
            raise RuntimeError("rejected")
    with store.read(account) as tx:
        assert [m.name for m in tx.mailboxes.all()] == ["Kept"]
        changes = tx.changes("Mailbox", "0", 10)
        assert changes is not None and changes.created == [f"M{kept}"]
        assert tx.state("Mailbox") == str(int(tx.state("Mailbox")))


def test_an_exception_rolls_back_and_notifies_nobody(store: Store, account: str) -> None:
    heard: list[tuple[str, dict[str, str]]] = []
    store.subscribe(lambda a, s: heard.append((a, s)))
    with pytest.raises(RuntimeError), store.write(account) as tx:
        tx.mailboxes.insert(MailboxRow(0, "Half", None, None, 0, True))
        tx.record("Mailbox", "M1", "created")
        raise RuntimeError("crash mid-request")
    with store.read(account) as tx:
        assert tx.mailboxes.all() == [] and tx.state("Mailbox") == "0"
    assert heard == []
    _mailbox(store, account)
    assert heard and heard[0][0] == account and "Mailbox" in heard[0][1]


def test_a_read_inside_a_write_sees_its_data(store: Store, account: str) -> None:
    with store.write(account) as tx:
        pk = tx.mailboxes.insert(MailboxRow(0, "Fresh", None, None, 0, True))
        with store.read(account) as inner:
            assert inner.mailboxes.get(pk) is not None


def test_concurrent_writers_never_lose_an_update(store: Store, account: str) -> None:
    """Writers of one account serialise: every change gets its own number, counts stay exact."""
    mailbox = _mailbox(store, account)
    with store.read(account) as tx:
        start = int(tx.state("Mailbox"))
    threads, rounds = 6, 15
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(rounds):
                with store.write(account) as tx:
                    tx.emails.adjust_counts(mailbox, 1, 1, 0, 0)
                    tx.record("Mailbox", f"M{mailbox}", "updated", counts_only=True)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    with store.read(account) as tx:
        row = tx.mailboxes.get(mailbox)
        assert row is not None and row.total_emails == threads * rounds
        assert int(tx.state("Mailbox")) == start + threads * rounds


def test_if_in_state_holds_under_concurrency(store: Store, account: str) -> None:
    """Of writers that all expect the same state, exactly one may write (RFC 8620 §5.3 ifInState)."""
    mailbox = _mailbox(store, account)
    with store.read(account) as tx:
        expected = tx.state("Mailbox")
    won: list[int] = []
    barrier = threading.Barrier(5)

    def attempt(n: int) -> None:
        barrier.wait()
        with store.write(account) as tx:
            if tx.state("Mailbox") != expected:
                return
            tx.mailboxes.update(mailbox, {"name": f"by {n}"})
            tx.record("Mailbox", f"M{mailbox}", "updated")
            won.append(n)

    workers = [threading.Thread(target=attempt, args=(n,)) for n in range(5)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(won) == 1
    with store.read(account) as tx:
        row = tx.mailboxes.get(mailbox)
        assert row is not None and row.name == f"by {won[0]}"


# -- blobs ----------------------------------------------------------------------------------------


def test_uploads_references_and_garbage(store: Store, account: str) -> None:
    blob_id = store.blobs.put(b"hello")
    with store.write(account) as tx:
        tx.add_upload(blob_id, "text/plain", 5, expires_at=10**10)
    with store.read(account) as tx:
        info = tx.blob(blob_id)
        assert info is not None and info.size == 5
    with store.write(account) as tx:
        tx.ref_blob(blob_id, "text/plain", 5, +1)
    assert store.collect_garbage(1) == 0 and store.blobs.exists(blob_id)
    with store.write(account) as tx:
        tx.ref_blob(blob_id, "text/plain", 5, -1)
    assert store.collect_garbage(10**11) == 1 and not store.blobs.exists(blob_id)


# -- emails, queries and full-text search ---------------------------------------------------------


def test_mailbox_list_view_and_counts(store: Store, account: str) -> None:
    mailbox = _mailbox(store, account)
    with store.write(account) as tx:
        ids = [_email(tx, mailbox, f"Subject {n}", received_at=1000 + n) for n in range(5)]
    with store.read(account) as tx:
        newest = [EmailSort("receivedAt", ascending=False)]
        window, position, total = tx.emails.query(("inMailbox", mailbox), newest, False, 1, 2, None, 0, True)
        assert (window, position, total) == (ids[3:1:-1], 1, None) or (window, position) == (ids[3:1:-1], 1)
        window, _, total = tx.emails.query(None, [EmailSort("subject")], False, 0, None, None, 0, True)
        assert window == ids and total == 5
        with pytest.raises(LookupError):
            tx.emails.query(("inMailbox", mailbox), newest, False, 0, 2, 10**9, 0, False)


def test_full_text_search_is_accent_and_case_insensitive(store: Store, account: str) -> None:
    mailbox = _mailbox(store, account)
    with store.write(account) as tx:
        cafe = _email(tx, mailbox, "Café crème")
        other = _email(tx, mailbox, "Tea time")
        tx.emails.index_text(cafe, SearchDocument("Café crème", "Zoë <zoe@example.com>", "", "", "", "Rendez-vous"
                                                  " au café de la gare à midi", ""))
        tx.emails.index_text(other, SearchDocument("Tea time", "bob@example.com", "", "", "", "See you at noon",
                                                   ""))

    def search(condition: tuple[object, ...]) -> list[int]:
        with store.read(account) as tx:
            return tx.emails.query(condition, [], False, 0, None, None, 0, False)[0]

    assert search(("text", [(False, "CAFE")])) == [cafe]
    assert search(("text", [(False, "caf")])) == [cafe]  # a word is also a prefix
    assert search(("text", [(True, "caf")])) == []  # a quoted word is not
    assert search(("body", [(True, "cafe de la gare")])) == [cafe]
    assert search(("body", [(True, "gare de la")])) == []
    assert search(("from", [(False, "zoe")])) == [cafe]
    assert search(("from", [(False, "example")])) == [cafe, other]
    assert search(("subject", [(False, "noon")])) == []
    assert search(("not", [("text", [(False, "noon")])])) == [cafe]
    with store.read(account) as tx:
        marked = tx.emails.snippets([cafe, other], ("text", [(False, "cafe")]))
    subject, preview = marked[cafe]
    assert subject is not None and "\x01Café\x02" in subject
    assert preview is not None and "\x01café\x02" in preview
    assert other not in marked or marked[other] == (None, None) or "\x01" not in "".join(filter(None, marked[other]))


# -- the outbound queue ---------------------------------------------------------------------------


def test_queue_claims_never_overlap(store: Store, account: str) -> None:
    with store.write(account) as tx:
        for n in range(40):
            tx.outbound.enqueue(QueueEntry(0, account, None, "B" + "0" * 64, "a@example.com",
                                           [[f"r{n}@example.net", "pending", ""]], 0.0, 0.0, 10**10))
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        while True:
            with store.outbound_queue() as queue:
                got = queue.claim(name, now=100.0, lease_until=10**9, limit=3)
            if not got:
                return
            with lock:
                claimed.extend(e.id for e in got)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 40 and len(set(claimed)) == 40


# -- schema ---------------------------------------------------------------------------------------


def test_a_newer_schema_is_refused(tmp_path: Path, store_backend: str) -> None:
    data = tmp_path / "data"
    _open(data).close()
    if store_backend == POSTGRESQL:
        import psycopg

        with psycopg.connect(store_for(data), autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (999)")
    else:
        import sqlite3

        with sqlite3.connect(data / "tidings.sqlite3") as conn:
            conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNew):
        _open(data)


def test_the_backends_have_the_same_migrations() -> None:
    """PostgreSQL's numbered migrations mirror SQLite's one-to-one (a new SQLite one needs its twin)."""
    from importlib import resources

    def names(package: str) -> list[str]:
        return sorted(e.name for e in resources.files(package).joinpath("migrations").iterdir()
                      if e.name.endswith(".sql"))

    assert names("tidings.store.postgres") == names("tidings.store.sqlite")
