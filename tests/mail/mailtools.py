"""Shared helpers for the JMAP Mail tests: raw messages, upload/import/download, an independent recount."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..helpers import JmapClient

# The shared message corpus, read in place (never copied into the repository).
CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"

requires_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared message corpus is not at {CORPUS}"
)


def message(
    subject: str = "Hello",
    *,
    sender: str = "Alice <alice@example.com>",
    to: str = "Bob <bob@example.com>",
    cc: str | None = None,
    msgid: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    date: str = "Tue, 01 Feb 2022 10:00:00 +0000",
    body: str = "Just a short note.\r\n",
    headers: dict[str, str] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    lines = [f"From: {sender}", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [f"Subject: {subject}", f"Date: {date}"]
    if msgid:
        lines.append(f"Message-ID: <{msgid}>")
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append(f"References: {references}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}", "Content-Transfer-Encoding: 8bit"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def upload(client: JmapClient, data: bytes, media_type: str = "message/rfc822") -> str:
    response = client.http.post(f"/jmap/upload/{client.account_id}/", content=data,
                                headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text
    return str(response.json()["blobId"])


def download(client: JmapClient, blob_id: str, name: str = "x", media_type: str | None = None) -> bytes:
    query = f"?type={media_type}" if media_type else ""
    response = client.http.get(f"/jmap/download/{client.account_id}/{blob_id}/{name}{query}")
    assert response.status_code == 200, (blob_id, response.status_code, response.text)
    return response.content


def roles(client: JmapClient) -> dict[str, str]:
    """Mailbox ids by role."""
    listed = client.ok("Mailbox/get", {"ids": None, "properties": ["role"]})["list"]
    return {m["role"]: m["id"] for m in listed if m["role"]}


def import_many(
    client: JmapClient,
    raws: list[bytes],
    mailbox_id: str,
    *,
    keywords: dict[str, bool] | None = None,
    received_at: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Upload and import messages in one Email/import; returns the created objects (or SetErrors)."""
    emails = {}
    for index, raw in enumerate(raws):
        spec: dict[str, Any] = {"blobId": upload(client, raw), "mailboxIds": {mailbox_id: True},
                                "keywords": keywords or {}}
        if received_at is not None:
            spec["receivedAt"] = received_at[index]
        emails[f"k{index}"] = spec
    result = client.ok("Email/import", {"emails": emails})
    created = result["created"] or {}
    not_created = result["notCreated"] or {}
    return [created.get(f"k{i}") or {"error": not_created[f"k{i}"]} for i in range(len(raws))]


def import_one(client: JmapClient, raw: bytes, mailbox_id: str, **kwargs: Any) -> dict[str, Any]:
    created = import_many(client, [raw], mailbox_id, **kwargs)[0]
    assert "error" not in created, created
    return created


def get_one(client: JmapClient, email_id: str, properties: list[str] | None = None, **args: Any) -> dict[str, Any]:
    result = client.ok("Email/get", {"ids": [email_id], "properties": properties, **args})
    assert result["notFound"] == [], result
    return dict(result["list"][0])


def query_ids(client: JmapClient, **args: Any) -> list[str]:
    return list(client.ok("Email/query", args)["ids"])


def set_ok(client: JmapClient, args: dict[str, Any]) -> dict[str, Any]:
    """An Email/set whose every operation succeeded."""
    result = client.ok("Email/set", args)
    for key in ("notCreated", "notUpdated", "notDestroyed"):
        assert not result.get(key), result
    return result


# -- Mailbox counts, recomputed from scratch (RFC 8621 §2)


def is_unread(keywords: dict[str, bool]) -> bool:
    return "$seen" not in keywords and "$draft" not in keywords


def recount(client: JmapClient) -> dict[str, dict[str, int]]:
    """totalEmails/unreadEmails/totalThreads/unreadThreads per mailbox, from Email/get of everything.

    unreadThreads is the "quality implementation" of RFC 8621 §2: a thread is unread in a mailbox when
    one of its emails is in the mailbox and one (any) is unread; emails only in the trash are ignored
    for other mailboxes, and emails not in the trash are ignored for the trash.
    """
    mailboxes = client.ok("Mailbox/get", {"ids": None, "properties": ["role"]})["list"]
    trash = next((m["id"] for m in mailboxes if m["role"] == "trash"), None)
    emails = client.ok("Email/get", {"ids": None, "properties": ["threadId", "mailboxIds", "keywords"]})["list"]
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for email in emails:
        assert email["mailboxIds"], f"RFC 8621 §4.1.1: {email['id']} is in no mailbox"
        by_thread.setdefault(email["threadId"], []).append(email)
    out = {}
    for mailbox in mailboxes:
        mid = mailbox["id"]
        inside = [e for e in emails if mid in e["mailboxIds"]]
        threads = {e["threadId"] for e in inside}

        def counts_for_unread(email: dict[str, Any], mid: str = mid) -> bool:
            if mid == trash:
                return trash in email["mailboxIds"]
            return set(email["mailboxIds"]) != {trash}

        unread_threads = sum(
            1 for t in threads if any(is_unread(e["keywords"]) and counts_for_unread(e) for e in by_thread[t])
        )
        out[mid] = {
            "totalEmails": len(inside),
            "unreadEmails": sum(1 for e in inside if is_unread(e["keywords"])),
            "totalThreads": len(threads),
            "unreadThreads": unread_threads,
        }
    return out


def assert_counts(client: JmapClient) -> None:
    """The server's Mailbox counts equal the recount (RFC 8621 §2: exact after every change)."""
    expected = recount(client)
    listed = client.ok("Mailbox/get", {"ids": None,
                                       "properties": ["totalEmails", "unreadEmails", "totalThreads",
                                                      "unreadThreads"]})["list"]
    actual = {m.pop("id"): m for m in listed}
    assert actual == expected


def split_mbox(data: bytes) -> Iterator[bytes]:
    """Messages of an mbox file, split on "From " lines (the separator line itself dropped)."""
    current: list[bytes] | None = None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if current:
                yield b"".join(current)
            current = []
            continue
        if current is not None:
            current.append(line)
    if current:
        yield b"".join(current)


def corpus_messages() -> list[tuple[str, bytes]]:
    """Every message of the corpus as (corpus-relative path, bytes); mbox files give "path#n" (1-based)."""
    out: list[tuple[str, bytes]] = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.name.startswith((".", "LICENSE", "README")):
            continue
        relative = path.relative_to(CORPUS).as_posix()
        data = path.read_bytes()
        if relative.endswith(".mbox.txt"):
            out.extend((f"{relative}#{n}", raw) for n, raw in enumerate(split_mbox(data), 1))
        else:
            out.append((relative, data))
    return out


def corpus_message(label: str) -> bytes:
    path, _, number = label.partition("#")
    data = (CORPUS / path).read_bytes()
    return list(split_mbox(data))[int(number) - 1] if number else data


ALL_PROPERTIES = [
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment", "preview",
    "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "headers",
]
ALL_BODY_PROPERTIES = ["partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid",
                       "language", "location", "subParts"]
