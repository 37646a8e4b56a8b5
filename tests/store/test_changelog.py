"""The change log part of the storage contract (store/base.py), in more depth, on every backend.

Intermediate states, the created/updated/destroyed classification, counts-only updates, unknown
states, snapshots, savepoints and two writers racing with the same expected state (ifInState).
The backends come from tests/stores.py, as for tests/store/test_contract.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.config import load
from tidings.server import open_store
from tidings.store.base import MailboxRow, Store, User

from ..stores import store_for

MAILBOX = "Mailbox"


@pytest.fixture
def store(tmp_path: Path, store_backend: str) -> Iterator[Store]:
    data = tmp_path / "data"
    instance = open_store(load(None, {"data": str(data), "store": store_for(data)}, environ={}))
    yield instance
    instance.close()


@pytest.fixture
def user(store: Store) -> User:
    with store.directory(write=True) as directory:
        return directory.add_user("alice", "alice@example.com", "hash")


@pytest.fixture
def account(user: User) -> str:
    return user.account_id


def _create(store: Store, account: str, name: str, parent: int | None = None) -> str:
    with store.write(account) as tx:
        pk = tx.mailboxes.insert(MailboxRow(0, name, parent, None, 0, True))
        tx.record(MAILBOX, f"M{pk}", "created")
    return f"M{pk}"


def _state(store: Store, account: str, type_name: str = MAILBOX) -> str:
    with store.read(account) as tx:
        return tx.state(type_name)


class TestChangeLogContract:
    # -- directory

    def test_users_accounts_and_tokens(self, store: Store, user: User) -> None:
        with store.directory(write=True) as directory:
            assert directory.user("alice") == user
            assert directory.user_by_id(user.id) == user
            assert directory.user("nobody") is None
            directory.add_token(user.id, "digest-1", "laptop")
            assert directory.user_for_token("digest-1") == user
            assert directory.user_for_token("digest-2") is None
            assert [label for label, _ in directory.tokens(user.id)] == ["laptop"]
            assert directory.revoke_token(user.id, "laptop") == 1
            assert directory.user_for_token("digest-1") is None
            assert directory.set_password("alice", "hash2")
            assert directory.user("alice").password_hash == "hash2"  # type: ignore[union-attr]
        assert store.account_exists(user.account_id)
        assert not store.account_exists("A999") and not store.account_exists("junk")

    def test_removing_a_user_removes_their_account_and_tokens(self, store: Store, user: User) -> None:
        _create(store, user.account_id, "x")
        with store.directory(write=True) as directory:
            directory.add_token(user.id, "digest", "t")
            assert directory.remove_user("alice")
            assert not directory.remove_user("alice")
            assert directory.user_for_token("digest") is None
        assert not store.account_exists(user.account_id)

    # -- states and the change log

    def test_a_new_type_has_state_zero_and_each_change_moves_it(self, store: Store, account: str) -> None:
        assert _state(store, account) == "0"
        first = _create(store, account, "a")
        one = _state(store, account)
        _create(store, account, "b")
        two = _state(store, account)
        assert int(two) > int(one) > 0
        with store.read(account) as tx:
            assert tx.all_states()[MAILBOX] == two
            assert tx.state("Email") == "0"
        assert first

    def test_changes_classify_created_updated_and_destroyed(self, store: Store, account: str) -> None:
        kept, updated, gone = (_create(store, account, n) for n in "abc")
        since = _state(store, account)
        new, brief = _create(store, account, "d"), _create(store, account, "e")
        with store.write(account) as tx:
            tx.record(MAILBOX, updated, "updated")
            tx.record(MAILBOX, gone, "destroyed")
            tx.record(MAILBOX, brief, "destroyed")  # created and destroyed since: never seen, not listed
        with store.read(account) as tx:
            changes = tx.changes(MAILBOX, since, 100)
        assert changes is not None
        assert (changes.created, changes.updated, changes.destroyed) == ([new], [updated], [gone])
        assert changes.new_state == _state(store, account) and not changes.has_more
        assert kept not in changes.created + changes.updated

    def test_changes_stop_at_intermediate_states_and_resume_from_them(self, store: Store, account: str) -> None:
        ids = [_create(store, account, str(i)) for i in range(7)]
        with store.write(account) as tx:
            tx.record(MAILBOX, ids[0], "updated")
        since, seen, rounds = "0", [], 0
        while True:
            with store.read(account) as tx:
                changes = tx.changes(MAILBOX, since, 3)
            assert changes is not None
            assert len(changes.created + changes.updated + changes.destroyed) <= 3
            seen += changes.created + changes.updated
            rounds += 1
            if not changes.has_more:
                break
            assert _cut(changes.new_state) > _cut(since)
            since = changes.new_state
        assert sorted(seen) == sorted(ids) and len(seen) == 7
        assert rounds == 3
        assert changes.new_state == _state(store, account)

    def test_objects_created_before_a_cut_but_changed_after_it_are_still_created(
        self, store: Store, account: str
    ) -> None:
        # RFC 8620 §5.2: a record must not be reported as updated before the client saw it created.
        since = _state(store, account)
        early = _create(store, account, "early")
        middle = _create(store, account, "middle")
        with store.write(account) as tx:
            tx.record(MAILBOX, early, "updated")  # early's latest change is now after middle's
        with store.read(account) as tx:
            first = tx.changes(MAILBOX, since, 1)
        assert first is not None and first.has_more and first.created == [middle]
        with store.read(account) as tx:
            second = tx.changes(MAILBOX, first.new_state, 1)
        assert second is not None and not second.has_more
        assert (second.created, second.updated) == ([early], [])
        assert second.new_state == _state(store, account)

    @pytest.mark.parametrize("since", ["junk", "-1", "", "99999", "1" * 40, "١", "5-2", "1-", "1-x"])
    def test_changes_from_unknown_states_cannot_be_calculated(self, store: Store, account: str, since: str) -> None:
        _create(store, account, "a")
        with store.read(account) as tx:
            assert tx.changes(MAILBOX, since, 10) is None
            assert tx.changed_since(MAILBOX, since) is None

    def test_counts_only_updates_are_told_apart(self, store: Store, account: str) -> None:
        box = _create(store, account, "a")
        since = _state(store, account)
        with store.write(account) as tx:
            tx.record(MAILBOX, box, "updated", counts_only=True)
        with store.read(account) as tx:
            changes = tx.changes(MAILBOX, since, 10)
        assert changes is not None and changes.updated == [box] and changes.only_counts
        with store.write(account) as tx:
            tx.record(MAILBOX, box, "updated")
        with store.read(account) as tx:
            changes = tx.changes(MAILBOX, since, 10)
        assert changes is not None and not changes.only_counts

    def test_changed_since_lists_every_object_changed_after_a_state(self, store: Store, account: str) -> None:
        _create(store, account, "a")
        since = _state(store, account)
        b = _create(store, account, "b")
        with store.read(account) as tx:
            assert tx.changed_since(MAILBOX, since) == {b}

    # -- transactions

    def test_a_savepoint_rolls_back_its_rows_and_its_changes_only(self, store: Store, account: str) -> None:
        before = _state(store, account)
        with store.write(account) as tx:
            kept = tx.mailboxes.insert(MailboxRow(0, "kept", None, None, 0, True))
            tx.record(MAILBOX, f"M{kept}", "created")
            with pytest.raises(RuntimeError), tx.savepoint():
                lost = tx.mailboxes.insert(MailboxRow(0, "lost", None, None, 0, True))
                tx.record(MAILBOX, f"M{lost}", "created")
                raise RuntimeError
            after_rollback = tx.state(MAILBOX)
        names = [row.name for row in _rows(store, account)]
        assert names == ["kept"]
        with store.read(account) as tx:
            changes = tx.changes(MAILBOX, before, 10)
        assert changes is not None and changes.created == [f"M{kept}"]
        assert after_rollback == _state(store, account)

    def test_a_failed_write_leaves_nothing_and_tells_no_listener(self, store: Store, account: str) -> None:
        heard: list[tuple[str, dict[str, str]]] = []
        store.subscribe(lambda acc, states: heard.append((acc, states)))
        before = _state(store, account)
        with pytest.raises(ZeroDivisionError), store.write(account) as tx:
            pk = tx.mailboxes.insert(MailboxRow(0, "x", None, None, 0, True))
            tx.record(MAILBOX, f"M{pk}", "created")
            raise ZeroDivisionError
        assert _rows(store, account) == [] and _state(store, account) == before and heard == []
        _create(store, account, "y")
        assert heard == [(account, {MAILBOX: _state(store, account)})]

    def test_a_read_snapshot_does_not_see_a_later_commit(self, store: Store, account: str) -> None:
        _create(store, account, "a")
        with store.read(account) as tx:
            first = tx.state(MAILBOX)
            done = threading.Event()

            def write_b() -> None:
                _create(store, account, "b")
                done.set()

            threading.Thread(target=write_b).start()
            assert done.wait(10)
            assert tx.state(MAILBOX) == first and len(tx.mailboxes.all()) == 1
        assert _state(store, account) != first

    def test_two_writers_with_the_same_expected_state_one_wins(self, store: Store, account: str) -> None:
        expected = _state(store, account)
        barrier = threading.Barrier(2)
        results: list[bool] = []

        def writer(name: str) -> None:
            barrier.wait()
            with store.write(account) as tx:
                # What ifInState does: compare inside the write transaction.
                if tx.state(MAILBOX) != expected:
                    results.append(False)
                    return
                pk = tx.mailboxes.insert(MailboxRow(0, name, None, None, 0, True))
                tx.record(MAILBOX, f"M{pk}", "created")
            results.append(True)

        threads = [threading.Thread(target=writer, args=(n,)) for n in ("one", "two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [False, True]
        assert len(_rows(store, account)) == 1

    def test_accounts_are_isolated(self, store: Store, account: str) -> None:
        with store.directory(write=True) as directory:
            other = directory.add_user("bob", "bob@example.com", "hash").account_id
        _create(store, account, "a")
        assert _rows(store, other) == [] and _state(store, other) == "0"

    # -- mailboxes

    def test_mailbox_rows_round_trip(self, store: Store, account: str) -> None:
        parent = int(_create(store, account, "parent")[1:])
        child = int(_create(store, account, "child", parent)[1:])
        with store.write(account) as tx:
            assert tx.mailboxes.has_children(parent) and not tx.mailboxes.has_children(child)
            tx.mailboxes.update(child, {"name": "renamed", "is_subscribed": False, "sort_order": 5})
            row = tx.mailboxes.get(child)
            assert row is not None
            assert (row.name, row.parent_id, row.is_subscribed, row.sort_order) == ("renamed", parent, False, 5)
            tx.mailboxes.delete(child)
            assert tx.mailboxes.get(child) is None and not tx.mailboxes.has_children(parent)

    # -- blobs

    def test_uploads_are_readable_until_they_expire_and_then_collected(self, store: Store, account: str) -> None:
        now = int(time.time())
        blob = store.blobs.put(b"data")
        with store.write(account) as tx:
            tx.add_upload(blob, "text/plain", 4, now + 100)
        with store.read(account) as tx:
            info = tx.blob(blob)
        assert info is not None and (info.type, info.size) == ("text/plain", 4)
        store.collect_garbage(now)
        assert store.blobs.exists(blob)
        store.collect_garbage(now + 101)
        assert not store.blobs.exists(blob)
        with store.read(account) as tx:
            assert tx.blob(blob) is None

    def test_referenced_blobs_outlive_their_upload(self, store: Store, account: str) -> None:
        now = int(time.time())
        blob = store.blobs.put(b"kept")
        with store.write(account) as tx:
            tx.add_upload(blob, "text/plain", 4, now + 10)
            tx.ref_blob(blob, "text/plain", 4, 1)
        store.collect_garbage(now + 1000)
        assert store.blobs.exists(blob)
        with store.write(account) as tx:
            tx.ref_blob(blob, "text/plain", 4, -1)
        store.collect_garbage(now + 1000)
        assert not store.blobs.exists(blob)


def _rows(store: Store, account: str) -> list[MailboxRow]:
    with store.read(account) as tx:
        return list(tx.mailboxes.all())


def _cut(state: str) -> int:
    """How far into the change log a state reaches ("N", or "B-C" for an intermediate state)."""
    return int(state.rpartition("-")[2])
