"""Bulk import (`tidings import`): mbox and Maildir sources, folders, flags, re-runs, failures, memory."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from tidings.cli import main
from tidings.mail.importer import (
    Importer,
    decode_mutf7,
    from_line_date,
    import_path,
    maildir_flags,
    read_mbox,
)
from tidings.mail.rebuild import rebuild
from tidings.server import Tidings

from ..helpers import LiveServer


def msg(subject: str, msgid: str, body: str = "Hello there.\n", *, reply_to: str | None = None,
        date: str = "Tue, 01 Feb 2022 10:00:00 +0000") -> str:
    lines = ["From: Ann Example <ann@example.org>", "To: Ben Example <ben@example.org>", f"Subject: {subject}",
             f"Date: {date}", f"Message-ID: <{msgid}>"]
    if reply_to:
        lines += [f"In-Reply-To: <{reply_to}>", f"References: <{reply_to}>"]
    return "\n".join(lines) + "\n\n" + body


def mbox(*messages: str, dates: tuple[str, ...] = ()) -> bytes:
    out = []
    for index, text in enumerate(messages):
        date = dates[index] if index < len(dates) else "Wed Mar  2 09:15:00 2022"
        out.append(f"From ann@example.org {date}\n{text}\n")
    return "".join(out).encode()


def account(tidings: Tidings, name: str = "alice") -> str:
    with tidings.store.directory() as directory:
        user = directory.user(name)
    assert user is not None
    return user.account_id


def emails(tidings: Tidings, account_id: str) -> list:
    with tidings.store.read(account_id) as tx:
        rows = tx.emails.rows(tx.emails.all_ids())
        names = {m.id: m.name for m in tx.mailboxes.all()}
    return [(names[next(iter(r.mailbox_ids))], r) for r in sorted(rows.values(), key=lambda r: r.id)]


def mailbox_counts(tidings: Tidings, account_id: str) -> dict[str, tuple[int, int, int, int]]:
    with tidings.store.read(account_id) as tx:
        return {m.name: (m.total_emails, m.unread_emails, m.total_threads, m.unread_threads)
                for m in tx.mailboxes.all()}


def test_mbox_import_unescapes_threads_and_dates(tidings: Tidings, tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    body = "First line.\n>From the start, mboxrd escapes this.\n>>From here two.\n\nEnd.\n"
    path.write_bytes(mbox(msg("Plans", "a@x", body), msg("Re: Plans", "b@x", reply_to="a@x"),
                          msg("Other", "c@x"), dates=("Wed Mar  2 09:15:00 2022", "Thu Mar  3 10:00:00 2022")))
    acc = account(tidings)
    report = import_path(tidings.store, acc, path, workers=1, progress=False)
    assert (report.imported, report.skipped, report.failed) == (3, 0, [])
    rows = emails(tidings, acc)
    assert [mailbox for mailbox, _ in rows] == ["Inbox"] * 3
    first, reply, other = (r for _, r in rows)
    raw = tidings.store.blobs.read(first.blob_id)
    assert raw is not None
    assert b"\r\nFrom the start, mboxrd escapes this.\r\n>From here two.\r\n" in raw
    assert raw.endswith(b"End.\r\n")  # the separator's empty line is not part of the message
    assert first.received_at == 1646212500  # the From line's date, taken as UTC
    assert reply.received_at == 1646301600
    assert first.thread_id == reply.thread_id != other.thread_id
    assert mailbox_counts(tidings, acc)["Inbox"] == (3, 3, 2, 2)


def test_rerun_imports_nothing_twice(tidings: Tidings, tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    path.write_bytes(mbox(msg("One", "1@x"), msg("Two", "2@x"), msg("One", "1@x")))
    acc = account(tidings)
    first = import_path(tidings.store, acc, path, workers=1, progress=False, batch_size=2)
    # The third message is the first one again, byte for byte: it is already there.
    assert (first.imported, first.skipped) == (2, 1)
    again = import_path(tidings.store, acc, path, workers=1, progress=False)
    assert (again.imported, again.skipped, again.failed) == (0, 3, [])
    # Into another mailbox, the same messages are new there.
    other = import_path(tidings.store, acc, path, mailbox="Archive/2022", workers=1, progress=False)
    assert (other.imported, other.skipped) == (2, 1)
    assert other.mailboxes_created == ["Archive/2022"]
    assert len(emails(tidings, acc)) == 4
    with tidings.store.read(acc) as tx:
        boxes = {m.name: m for m in tx.mailboxes.all()}
    assert boxes["2022"].parent_id == boxes["Archive"].id and boxes["Archive"].role == "archive"


def test_broken_messages_are_reported_never_dropped(tidings: Tidings, tmp_path: Path) -> None:
    path = tmp_path / "mixed.mbox"
    good = msg("Fine", "ok@x")
    no_headers = "this line is no header field at all\nand neither is this one\n"
    truncated = "Subject: cut off\nFrom: someone"  # no body, no final newline: imported best-effort
    data = mbox(good, no_headers) + b"From x Wed Mar  2 09:15:00 2022\n\n" + mbox(truncated)
    path.write_bytes(data)
    report = import_path(tidings.store, account(tidings), path, workers=1, progress=False)
    assert report.imported == 2
    reasons = dict(report.failed)
    offsets = {label.rsplit("@", 1)[1] for label in reasons}
    second = data.index(b"From ann", 1)
    empty = data.index(b"From x")
    assert offsets == {str(second), str(empty)}
    assert reasons[f"{path}@{second}"] == "not a message: no header fields"
    assert reasons[f"{path}@{empty}"] == "empty message"
    assert report.summary() == "imported 2, skipped 0, failed 2"


def write_maildir(root: Path, folder: str, name: str, text: str, mtime: int) -> Path:
    directory = root / folder if folder else root
    for sub in ("cur", "new", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def test_maildir_tree_folders_flags_and_mtime(tidings: Tidings, tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    write_maildir(root, "", "cur/1000.a.host:2,S", msg("Seen", "s@x"), 1_600_000_000)
    write_maildir(root, "", "new/1001.b.host", msg("New", "n@x"), 1_600_000_100)
    write_maildir(root, "", "cur/1002.c.host:2,FRa", msg("Flagged", "f@x"), 1_600_000_200)
    write_maildir(root, "", "cur/1003.d.host:2,ST", msg("Trashed", "t@x"), 1_600_000_300)
    write_maildir(root, ".Work.Projects", "cur/1004.e.host:2,DP", msg("Draft", "d@x"), 1_600_000_400)
    write_maildir(root, ".Entw&APw-rfe", "cur/1005.f.host:2,S", msg("Entwurf", "e@x"), 1_600_000_500)
    write_maildir(root, ".Sent", "cur/1006.g.host:2,S", msg("Sent one", "g@x"), 1_600_000_600)
    (root / "dovecot-keywords").write_text("0 $Important\n1 Later\n")
    acc = account(tidings)
    report = import_path(tidings.store, acc, root, workers=1, progress=False)
    assert (report.imported, report.skipped, report.trashed, report.failed) == (6, 0, 1, [])
    assert report.summary() == "imported 6, skipped 1 (0 already present, 1 marked trashed), failed 0"
    assert sorted(report.mailboxes_created) == ["Entwürfe", "Work", "Work/Projects"]
    rows = {r.subject_sort: (mailbox, r) for mailbox, r in emails(tidings, acc)}
    assert set(rows) == {"Seen", "New", "Flagged", "Draft", "Entwurf", "Sent one"}
    assert rows["Seen"][0] == "Inbox" and rows["Seen"][1].keywords == {"$seen"}
    assert rows["New"][1].keywords == frozenset()
    assert rows["Flagged"][1].keywords == {"$flagged", "$answered", "$important"}
    assert rows["Draft"][0] == "Projects" and rows["Draft"][1].keywords == {"$draft", "$forwarded"}
    assert rows["Entwurf"][0] == "Entwürfe"
    assert rows["Sent one"][0] == "Sent"  # an existing mailbox, not a new one
    assert rows["Seen"][1].received_at == 1_600_000_000
    assert rows["Draft"][1].received_at == 1_600_000_400
    again = import_path(tidings.store, acc, root, workers=1, progress=False)
    assert (again.imported, again.skipped, again.trashed) == (0, 6, 1)


def test_helpers() -> None:
    assert decode_mutf7("Entw&APw-rfe") == "Entwürfe"
    assert decode_mutf7("a&-b") == "a&b"
    assert maildir_flags("123.host:2,RS", {}) == (frozenset({"$answered", "$seen"}), False)
    assert maildir_flags("123.host!2,T", {}) == (frozenset(), True)
    assert maildir_flags("123.host", {}) == (frozenset(), False)
    assert from_line_date(b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n") == 1310126914
    assert from_line_date(b"From a@b Sat Jan  3 01:05:34 1996 remote from x\n") == 820631134
    assert from_line_date(b"From someone\n") is None


def test_worker_processes_give_the_same_result(tidings: Tidings, tmp_path: Path) -> None:
    path = tmp_path / "many.mbox"
    messages = [msg(f"Topic {i % 7}" if i % 3 else f"Re: Topic {(i - 1) % 7}", f"m{i}@x",
                    reply_to=f"m{i - 1}@x" if i % 3 else None) for i in range(40)]
    path.write_bytes(mbox(*messages))
    acc = account(tidings)
    report = import_path(tidings.store, acc, path, workers=2, batch_size=7, progress=False)
    assert (report.imported, report.failed) == (40, [])
    acc_bob = account(tidings, "bob")
    serial = import_path(tidings.store, acc_bob, path, workers=1, batch_size=7, progress=False)
    assert serial.imported == 40

    def shape(account_id: str) -> list[tuple[str, int, int]]:
        rows = [r for _, r in emails(tidings, account_id)]
        first = {}
        for r in rows:
            first.setdefault(r.thread_id, r.id)
        return [(r.blob_id, r.received_at, rows.index(next(x for x in rows if x.id == first[r.thread_id])))
                for r in rows]

    assert shape(acc) == shape(acc_bob)
    assert mailbox_counts(tidings, acc)["Inbox"] == mailbox_counts(tidings, acc_bob)["Inbox"]


def test_streaming_memory_stays_bounded(tidings: Tidings, tmp_path: Path) -> None:
    """A large mbox is read one message at a time: Python memory does not follow the file's size."""
    path = tmp_path / "large.mbox"
    filler = ("All work and no play makes a dull mailbox. " * 40 + "\n") * 20  # ~35 kB per message
    with open(path, "wb") as out:
        for i in range(600):
            out.write(mbox(msg(f"Bulk {i}", f"bulk{i}@x", filler)))
    size = path.stat().st_size
    assert size > 20_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_mbox(path))
        _, reading_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        subset = tmp_path / "subset.mbox"
        with open(subset, "wb") as out:
            for i in range(150):
                out.write(mbox(msg(f"Bulk {i}", f"bulk{i}@x", filler)))
        importer = Importer(tidings.store, account(tidings), batch_size=25)
        report = importer.run(read_mbox(subset))
        _, import_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600
    assert reading_peak < 5_000_000, reading_peak  # a 1 MB read block and a message or two, not 20 MB
    assert report.imported == 150
    # Two batches in flight of 25 messages (raw and parsed forms), not the 5 MB file.
    assert import_peak < 12_000_000, import_peak


@pytest.mark.sqlite_only  # the command opens the data directory's SQLite store
def test_cli_import(tidings: Tidings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.mbox"
    path.write_bytes(mbox(msg("One", "1@x"), "not a header\n"))
    data = str(tidings.config.data_dir)
    assert main(["import", "alice", str(path), "--data", data, "--mailbox", "Imported"]) == 1
    out = capsys.readouterr().out
    assert "created mailbox Imported" in out
    assert f"failed: {path}@" in out and "no header fields" in out
    assert out.rstrip().endswith("imported 1, skipped 0, failed 1")
    assert main(["import", "nobody", str(path), "--data", data]) == 2
    assert main(["import", "alice", str(tmp_path / "missing"), "--data", data]) == 2


def test_import_while_serving(server: LiveServer, tidings: Tidings, tmp_path: Path) -> None:
    """Short write transactions: a client keeps being served, and sees the mail arrive via /changes."""
    client = server.client("alice", "secret")
    state = client.ok("Email/get", {"ids": []})["state"]
    path = tmp_path / "live.mbox"
    path.write_bytes(mbox(*(msg(f"Live {i}", f"live{i}@x") for i in range(60))))
    started = time.monotonic()
    report = import_path(tidings.store, account(tidings), path, workers=1, batch_size=10, progress=False)
    assert report.imported == 60
    changes = client.ok("Email/changes", {"sinceState": state})
    assert len(changes["created"]) == 60
    inbox = client.ok("Mailbox/get", {})["list"]
    assert next(m for m in inbox if m["role"] == "inbox")["totalEmails"] == 60
    assert time.monotonic() - started < 60
    client.close()
    assert rebuild(tidings.store, account(tidings)).changed is False


def test_a_failure_while_writing_leaves_the_rest_of_the_batch(tidings: Tidings, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast write (no savepoints) is rolled back and redone message by message."""
    from tidings.mail import importer

    real = importer.ingest

    def flaky(tx, prepared, *args, **kwargs):  # type: ignore[no-untyped-def]
        if prepared.parsed.subject == "Two":
            raise RuntimeError("disk on fire")
        return real(tx, prepared, *args, **kwargs)

    monkeypatch.setattr(importer, "ingest", flaky)
    path = tmp_path / "in.mbox"
    path.write_bytes(mbox(msg("One", "1@x"), msg("Two", "2@x"), msg("Three", "3@x")))
    acc = account(tidings)
    report = import_path(tidings.store, acc, path, workers=1, progress=False, mailbox="New")
    assert report.imported == 2
    assert [(label.rsplit("@", 1)[1], reason) for label, reason in report.failed] == [
        (str(path.read_bytes().index(b"From ann", 1)), "RuntimeError: disk on fire")]
    assert report.mailboxes_created == ["New"]
    assert sorted(r.subject_sort for _, r in emails(tidings, acc)) == ["One", "Three"]
    assert mailbox_counts(tidings, acc)["New"] == (2, 2, 2, 2)
