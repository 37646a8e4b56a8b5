"""LMTP delivery (RFC 2033) over a real socket with smtplib."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tidings.store.sqlite import SqliteStore

from ..helpers import JmapClient, LiveServer
from .tools import emails, lmtp_send, mailbox_id, message, raw_of


def test_delivers_with_trace_headers(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    rcpt, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message())
    assert rcpt == [(250, b"2.1.5 Recipient OK")]
    assert data == [(250, b"2.0.0 Delivered")]
    [email] = emails(alice, "subject", "mailboxIds", "blobId")
    assert email["subject"] == "Hello"
    assert email["mailboxIds"] == {mailbox_id(alice, "inbox"): True}
    raw = raw_of(alice, email["blobId"])
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    # RFC 5321 §4.4: Return-Path first; then Delivered-To and this hop's Received.
    assert head[0] == b"Return-Path: <carol@remote.test>"
    assert head[1] == b"Delivered-To: alice@example.com"
    assert head[2].startswith(b"Received: from client.test ([127.0.0.1])")
    assert b"by mx.example.com with LMTP" in raw
    assert b"for <alice@example.com>;" in raw


def test_one_reply_per_recipient(lmtp: smtplib.LMTP, alice: JmapClient, mail_server: LiveServer) -> None:
    rcpt, data = lmtp_send(
        lmtp, "carol@remote.test", ["alice@example.com", "nobody@example.com", "bob@example.com"], message()
    )
    # RFC 2033 §4.2: unknown recipients are refused at RCPT; DATA answers each accepted one.
    assert [code for code, _ in rcpt] == [250, 550, 250]
    assert rcpt[1] == (550, b"5.1.1 No such user here")
    assert data == [(250, b"2.0.0 Delivered"), (250, b"2.0.0 Delivered")]
    assert len(emails(alice)) == 1
    bob = mail_server.client("bob", "hunter2")
    assert len(emails(bob)) == 1
    bob.close()


def test_only_local_domains(lmtp: smtplib.LMTP) -> None:
    code, _ = lmtp.mail("carol@remote.test")
    assert code == 250
    assert lmtp.rcpt("alice@elsewhere.test")[0] == 550


def test_plus_addressing_into_named_mailbox(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    created = alice.ok("Mailbox/set", {"create": {"l": {"name": "Lists"}}})["created"]["l"]["id"]
    lmtp_send(lmtp, "carol@remote.test", ["alice+lists@example.com"], message("to lists", message_id="<a@x>"))
    lmtp_send(lmtp, "carol@remote.test", ["alice+other@example.com"], message("to other", message_id="<b@x>"))
    by_subject = {e["subject"]: e["mailboxIds"] for e in emails(alice)}
    assert by_subject["to lists"] == {created: True}
    assert by_subject["to other"] == {mailbox_id(alice, "inbox"): True}


def test_aliases_and_catch_all(lmtp: smtplib.LMTP, alice: JmapClient, mail_server: LiveServer) -> None:
    rcpt, data = lmtp_send(
        lmtp,
        "carol@remote.test",
        ["postmaster@example.com", "sales@example.net", "whoever@example.net", "whoever@example.com"],
        message(),
    )
    # postmaster -> alice (alias), sales -> bob (alias to an address), example.net catch-all -> alice;
    # example.com has no catch-all.
    assert [code for code, _ in rcpt] == [250, 250, 250, 550]
    assert [code for code, _ in data] == [250, 250, 250]
    bob = mail_server.client("bob", "hunter2")
    assert len(emails(bob)) == 1
    bob.close()
    # postmaster@ and whoever@example.net both reach alice's Inbox: the second copy is a duplicate.
    assert len(emails(alice)) == 1


def test_duplicate_delivery_is_suppressed(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    first = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message())
    again = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message())
    other = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message(message_id="<other@x>"))
    no_id = [lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message(message_id=None)) for _ in "12"]
    assert first[1] == [(250, b"2.0.0 Delivered")]
    assert again[1] == [(250, b"2.0.0 Delivered (duplicate suppressed)")]
    assert other[1] == [(250, b"2.0.0 Delivered")]
    assert all(reply[1] == [(250, b"2.0.0 Delivered")] for reply in no_id)
    assert len(emails(alice)) == 4


@pytest.mark.sqlite_only  # opens the SQLite files directly
def test_acknowledged_message_is_on_disk(lmtp: smtplib.LMTP, mail_tidings: object, tmp_path: Path) -> None:
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("durable"))
    assert data[0][0] == 250
    # A second, independent store on the same files (as after a crash) sees it at once.
    other = SqliteStore(tmp_path / "data")
    with other.read("A1") as tx:
        rows = tx.emails.rows(tx.emails.all_ids())
    [row] = rows.values()
    assert other.blobs.read(row.blob_id) is not None
    other.close()


def test_size_limit(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    assert lmtp.has_extn("size") and lmtp.esmtp_features["size"] == "200000"
    code, _ = lmtp.mail("carol@remote.test", ["SIZE=300000"])
    assert code == 552
    lmtp.rset()
    big = message(body=("x" * 900 + "\r\n") * 300)
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com", "bob@example.com"], big)
    # One reply per accepted recipient, even for the size refusal (RFC 2033 §4.2).
    assert [code for code, _ in data] == [552, 552]
    assert emails(alice) == []
    # The connection is still usable.
    assert lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message())[1][0][0] == 250


def test_smtputf8_and_8bit_headers(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    utf8 = message("Grüße", sender="jörg@remote.test", message_id="<u1@x>")
    _, data = lmtp_send(lmtp, "jörg@remote.test", ["alice@example.com"], utf8, ["SMTPUTF8", "BODY=8BITMIME"])
    assert data == [(250, b"2.0.0 Delivered")]
    assert [e["subject"] for e in emails(alice)] == ["Grüße"]
    # Without SMTPUTF8, raw 8-bit header bytes are refused and nothing is stored.
    latin = message("Gr\xfc\xdfe", message_id="<u2@x>").replace("Grüße".encode(), "Grüße".encode("latin-1"))
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], latin)
    assert data == [(554, b"5.6.7 Non-ASCII header fields need SMTPUTF8")]
    # An 8-bit body with BODY=8BITMIME is fine.
    body = message("8bit body", message_id="<u3@x>", extra="Content-Type: text/plain; charset=utf-8\r\n",
                   body="Grüße\r\n")
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], body, ["BODY=8BITMIME"])
    assert data == [(250, b"2.0.0 Delivered")]
    assert len(emails(alice)) == 2


def test_bad_content_is_refused_and_not_stored(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    cases = {
        "nul": message(body="a\x00b\r\n"),
        "bare lf": message(body="one\ntwo\r\n"),
        "bare cr": message(body="one\rtwo\r\n"),
        "no headers": b"just text\r\n",
    }
    replies = {}
    for name, data in cases.items():
        _, got = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com", "bob@example.com"], data)
        replies[name] = got
    assert replies["nul"] == [(554, b"5.6.0 Message contains NUL characters")] * 2
    assert replies["bare lf"] == [(554, b"5.6.0 Message contains a bare CR or LF")] * 2
    assert replies["bare cr"] == [(554, b"5.6.0 Message contains a bare CR or LF")] * 2
    assert replies["no headers"] == [(554, b"5.6.0 Message has no header fields")] * 2
    assert emails(alice) == []


def test_overlong_line(lmtp: smtplib.LMTP, alice: JmapClient) -> None:
    # RFC 5321 §4.5.3.1.6: 1000 octets per line including CRLF.
    _, data = lmtp_send(lmtp, "carol@remote.test", ["alice@example.com", "bob@example.com"],
                        message(body="x" * 5000 + "\r\n"))
    assert [code for code, _ in data] == [500, 500]
    assert emails(alice) == []


def test_malformed_commands(lmtp: smtplib.LMTP) -> None:
    assert lmtp.docmd("HELO", "x")[0] == 500  # LMTP has LHLO only (RFC 2033 §4.1)
    assert lmtp.docmd("FROB")[0] == 500
    assert lmtp.docmd("RCPT", "TO:<alice@example.com>")[0] == 503  # no MAIL yet
    assert lmtp.docmd("MAIL", "FROM:<<bad>>")[0] in (501, 553)
    assert lmtp.docmd("MAIL", "FROM:<carol@remote.test> FROB=1")[0] == 555
    assert lmtp.docmd("MAIL", "FROM:<carol@remote.test>")[0] == 250
    assert lmtp.docmd("DATA")[0] == 503  # no recipient yet
    assert lmtp.docmd("RCPT", "TO:<alice@example.com> FROB=1")[0] == 555  # DSN parameters are accepted
    assert lmtp.docmd("RCPT", "TO:<a\x01b@example.com>")[0] in (501, 553)
    assert lmtp.docmd("MAIL", "FROM:<" + "x" * 2000 + "@remote.test>")[0] == 500  # command line too long
    assert lmtp.docmd("NOOP")[0] == 250
