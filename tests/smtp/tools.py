"""Client-side helpers for the delivery tests."""

from __future__ import annotations

import smtplib
from typing import Any

from ..helpers import JmapClient


def message(
    subject: str = "Hello",
    *,
    to: str = "alice@example.com",
    sender: str = "carol@remote.test",
    message_id: str | None = "<m1@remote.test>",
    extra: str = "",
    body: str = "Hello there.\r\n",
) -> bytes:
    lines = [f"From: Carol <{sender}>", f"To: {to}", f"Subject: {subject}", "Date: Mon, 1 Jan 2024 10:00:00 +0000"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    head = "\r\n".join(lines) + "\r\n" + extra
    return (head + "\r\n" + body).encode()


def lmtp_send(
    client: smtplib.LMTP, mail_from: str, recipients: list[str], data: bytes, options: list[str] | None = None
) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """(RCPT replies, DATA replies: one per accepted recipient, RFC 2033 §4.2)."""
    code, text = client.mail(mail_from, options or [])
    assert code == 250, text
    rcpt = [client.rcpt(r) for r in recipients]
    accepted = sum(1 for code, _ in rcpt if code == 250)
    if not accepted:
        client.rset()
        return rcpt, []
    data_replies = [client.data(data)]
    for _ in range(accepted - 1):
        data_replies.append(client.getreply())
    return rcpt, data_replies


def emails(client: JmapClient, *properties: str) -> list[dict[str, Any]]:
    ids = client.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]})["ids"]
    if not ids:
        return []
    props = list(properties) or ["subject", "mailboxIds", "keywords"]
    listed: list[dict[str, Any]] = client.ok("Email/get", {"ids": ids, "properties": props})["list"]
    return listed


def raw_of(client: JmapClient, blob_id: str) -> bytes:
    response = client.http.get(f"/jmap/download/{client.account_id}/{blob_id}/m.eml?type=message/rfc822")
    assert response.status_code == 200, response.text
    return response.content


def mailbox_id(client: JmapClient, role: str | None = None, name: str | None = None) -> str:
    for box in client.ok("Mailbox/get", {})["list"]:
        if (role and box["role"] == role) or (name and box["name"] == name):
            return str(box["id"])
    raise LookupError(role or name)
