"""Small delivered messages are kept in the database (store/blobs.py INLINE_MAX), larger ones as
files; every reader finds both: download (ranges, ETag), Email/get body values, Blob/copy, the
conversations rebuild, garbage collection and `tidings migrate` to PostgreSQL."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tidings.mail.delivery import Recipient
from tidings.mail.rebuild import rebuild
from tidings.server import Tidings
from tidings.store.blobs import INLINE_MAX

from ..helpers import JmapClient, make_tidings
from ..stores import REQUIRE_POSTGRES, postgres_problem, postgres_url
from .tools import emails, lmtp_send, message, raw_of


def _inline_ids(instance: Tidings) -> set[str]:
    store = instance.store
    if hasattr(store, "pool"):  # PostgreSQL
        with store.pool.connection() as conn:
            return {r[0] for r in conn.execute("SELECT blob_id FROM blob_data")}
    conn = store._conn()  # type: ignore[attr-defined]
    return {r[0] for r in conn.execute("SELECT blob_id FROM blob_data")}


def test_small_message_is_in_the_database_and_readable(
    lmtp: smtplib.LMTP, alice: JmapClient, mail_tidings: Tidings
) -> None:
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("small", body="Inline body.\r\n"))
    assert data == [(250, b"2.0.0 Delivered")]
    [email] = emails(alice, "blobId", "size")
    blob_id = email["blobId"]
    assert not mail_tidings.store.blobs.path(blob_id).exists()
    assert blob_id in _inline_ids(mail_tidings)

    # Download: whole, a range, and the ETag (RFC 8620 §6.2).
    raw = raw_of(alice, blob_id)
    assert len(raw) == email["size"] and raw.startswith(b"Return-Path: <carol@remote.test>\r\n")
    url = f"/jmap/download/{alice.account_id}/{blob_id}/m.eml?type=message/rfc822"
    part = alice.http.get(url, headers={"Range": "bytes=0-10"})
    assert part.status_code == 206 and part.content == raw[:11]
    assert part.headers["content-range"] == f"bytes 0-10/{len(raw)}"
    cached = alice.http.get(url, headers={"If-None-Match": part.headers["etag"]})
    assert cached.status_code == 304

    # Email/get parses body values from the stored message.
    got = alice.ok("Email/get", {"ids": [email["id"]], "properties": ["bodyValues", "textBody"],
                                 "fetchTextBodyValues": True})["list"][0]
    [part_id] = [p["partId"] for p in got["textBody"]]
    assert got["bodyValues"][part_id]["value"].strip() == "Inline body."

    # Blob/copy (RFC 8620 §6.3) shares the stored blob as it is: same id, still downloadable.
    copied = alice.ok("Blob/copy", {"fromAccountId": alice.account_id, "blobIds": [blob_id]})
    assert copied["copied"] == {blob_id: blob_id}
    assert not mail_tidings.store.blobs.path(blob_id).exists()
    assert raw_of(alice, blob_id) == raw

    # The conversations rebuild reads the stored messages' headers.
    report = rebuild(mail_tidings.store, alice.account_id)
    assert report.emails == 1


def test_large_message_is_a_file(lmtp: smtplib.LMTP, alice: JmapClient, mail_tidings: Tidings) -> None:
    body = ("y" * 98 + "\r\n") * (INLINE_MAX // 100 + 10)
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("large", body=body))
    assert data == [(250, b"2.0.0 Delivered")]
    [email] = emails(alice, "blobId", "size")
    assert email["size"] > INLINE_MAX
    assert mail_tidings.store.blobs.path(email["blobId"]).is_file()
    assert email["blobId"] not in _inline_ids(mail_tidings)
    assert raw_of(alice, email["blobId"]).endswith(body.encode())


def test_garbage_collection_removes_unreferenced_inline_blobs(
    lmtp: smtplib.LMTP, alice: JmapClient, mail_tidings: Tidings
) -> None:
    lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("keep", message_id="<keep@x>"))
    lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("drop", message_id="<drop@x>"))
    by_subject = {e["subject"]: e for e in emails(alice, "subject", "blobId")}
    alice.ok("Email/set", {"destroy": [by_subject["drop"]["id"]]})
    mail_tidings.store.collect_garbage(2**40)
    store = mail_tidings.store
    assert store.blobs.read(by_subject["drop"]["blobId"]) is None
    assert by_subject["drop"]["blobId"] not in _inline_ids(mail_tidings)
    assert store.blobs.read(by_subject["keep"]["blobId"]) is not None
    assert raw_of(alice, by_subject["keep"]["blobId"]).endswith(b"Hello there.\r\n")


def test_duplicate_delivery_stores_no_inline_blob(lmtp: smtplib.LMTP, alice: JmapClient, mail_tidings: Tidings) -> None:
    first = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("once", message_id="<dup@x>"))
    again = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("once", message_id="<dup@x>"))
    assert first[1] == [(250, b"2.0.0 Delivered")]
    assert again[1] == [(250, b"2.0.0 Delivered (duplicate suppressed)")]
    [email] = emails(alice, "blobId")
    assert _inline_ids(mail_tidings) == {email["blobId"]}


@pytest.mark.sqlite_only  # copies an SQLite store into PostgreSQL
def test_migrate_to_postgresql_carries_inline_blobs(tmp_path: Path) -> None:
    problem = postgres_problem()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(problem)
        pytest.skip(problem)
    from tidings.store.postgres import PgStore
    from tidings.storeadmin import copy_store

    source = make_tidings(tmp_path / "lite", store="", domain="example.com")
    user = source.accounts.add_user("alice", "secret")
    small = source.mailflow.delivery.deliver(message("small"), Recipient("alice@example.com", user), mail_from="c@x")
    large_raw = message("large", message_id="<large@x>", body="z" * (INLINE_MAX + 1000) + "\r\n")
    large = source.mailflow.delivery.deliver(large_raw, Recipient("alice@example.com", user), mail_from="c@x")
    assert small.blob_id is not None and large.blob_id is not None
    expected = {b: source.store.blobs.read(b) for b in (small.blob_id, large.blob_id)}
    source.close()

    url = postgres_url(tmp_path / "pg")
    copy_store(tmp_path / "lite", url, tmp_path / "pg-blobs", progress=lambda _: None)
    target = PgStore(url, tmp_path / "pg-blobs")
    try:
        for blob_id, data in expected.items():
            assert data is not None and target.blobs.read(blob_id) == data
        assert not target.blobs.path(small.blob_id).exists()
    finally:
        target.close()
