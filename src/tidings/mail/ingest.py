"""The one path every new message takes into an account: LMTP/SMTP delivery, Email/import,
Email/set create, Email/copy, bulk import (and later Sieve).

`prepare` runs outside any transaction (store the raw bytes as a blob, parse them once); `ingest`
runs inside the account's write transaction and does everything else: thread assignment, the email
row and its mailboxes, counts, the full-text index, blob references and the change log. The raw
message is kept byte for byte; everything a list view needs is parsed here, once.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from ..mime import ParsedMessage, as_text, base_subject, parse_message
from ..store.base import EmailRow, SearchDocument, Transaction
from ..store.blobs import FileBlobStore
from .conversations import assign_thread, linked_message_ids
from .counts import CountChanges
from .ids import EMAIL, THREAD, to_wire


@dataclass(frozen=True)
class Documents:
    """What ingest stores that depends on the message alone: its summary and structure documents
    and its full-text document. A bulk import computes them in the worker process that parsed the
    message, so the single writer only writes (`documents_for`)."""

    summary: bytes
    structure: bytes
    search: SearchDocument


@dataclass(frozen=True)
class Prepared:
    blob_id: str
    parsed: ParsedMessage
    # Computed by ingest when not given.
    documents: Documents | None = None


def prepare(blobs: FileBlobStore, raw: bytes) -> Prepared:
    """Store the raw message durably and parse it (no transaction needed: blobs are immutable)."""
    blob_id = blobs.put(raw)
    return Prepared(blob_id, parse_message(raw))


def prepare_stored(blob_id: str, raw: bytes) -> Prepared:
    return Prepared(blob_id, parse_message(raw))


def clean(text: str) -> str:
    """Text as an index may hold it: without NUL, which some stores refuse in text columns (PostgreSQL).
    The raw message keeps every byte; only the derived index values lose it."""
    return text.replace("\x00", "") if "\x00" in text else text


def sort_key(text: str) -> str:
    """The i;unicode-casemap key (RFC 5051) used to sort from/to/subject."""
    return unicodedata.normalize("NFKD", text.casefold())


def _first_address(addresses: list[dict[str, Any]] | None) -> str:
    # RFC 8621 §4.4.2: the name of the first address, else its email, else "".
    if not addresses:
        return ""
    first = addresses[0]
    return str(first.get("name") or first.get("email") or "")


def epoch(date_text: str | None) -> int | None:
    if not date_text:
        return None
    try:
        return int(datetime.fromisoformat(date_text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def received_time(parsed: ParsedMessage) -> int | None:
    """The date of the most recent Received header (RFC 8621 §4.8 receivedAt default)."""
    for name, value in parsed.headers:
        if name.lower() == "received":
            _, _, date = value.rpartition(";")
            try:
                return int(parsedate_to_datetime(date.strip()).timestamp())
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    return None


def summary_document(parsed: ParsedMessage) -> dict[str, Any]:
    return {
        "messageId": parsed.message_id,
        "inReplyTo": parsed.in_reply_to,
        "references": parsed.references,
        "sender": parsed.sender,
        "from": parsed.from_,
        "to": parsed.to,
        "cc": parsed.cc,
        "bcc": parsed.bcc,
        "replyTo": parsed.reply_to,
        "subject": parsed.subject,
        "sentAt": parsed.sent_at,
        "hasAttachment": parsed.has_attachment,
        "preview": parsed.preview,
    }


def structure_document(parsed: ParsedMessage) -> dict[str, Any]:
    return {
        "headers": parsed.headers,
        # Decoded header values for the `header` filter (RFC 8621 §4.4.1: decode RFC 2047 first).
        "headerText": [[clean(name.lower()), clean(as_text(value))] for name, value in parsed.headers],
        "bodyStructure": parsed.body_structure,
        "textBody": parsed.text_body,
        "htmlBody": parsed.html_body,
        "attachments": parsed.attachments,
    } | ({"textRanges": parsed.text_ranges} if parsed.text_ranges is not None else {})


def search_document(parsed: ParsedMessage) -> SearchDocument:
    text = parsed.search_text()
    return SearchDocument(
        subject=clean(text.subject),
        from_=clean(text.from_),
        to=clean(text.to),
        cc=clean(text.cc),
        bcc=clean(text.bcc),
        body=clean(text.body),
        attachments=clean(" ".join(text.attachment_names)
                          + (" " + text.attachment_text if text.attachment_text else "")),
    )


def documents_for(parsed: ParsedMessage) -> Documents:
    return Documents(orjson.dumps(summary_document(parsed)), orjson.dumps(structure_document(parsed)),
                     search_document(parsed))


def trash_mailbox(tx: Transaction) -> int | None:
    for row in tx.mailboxes.all():
        if row.role == "trash":
            return row.id
    return None


# `ingest`'s trash argument when the caller has not looked the trash mailbox up.
LOOK_UP = -1


def ingest(
    tx: Transaction,
    prepared: Prepared,
    mailbox_ids: set[int],
    keywords: frozenset[str],
    received_at: int | None = None,
    *,
    counts: CountChanges | None = None,
    trash: int | None = LOOK_UP,
) -> EmailRow:
    """Add one message to the account of `tx`. The caller has checked the mailboxes exist.

    A caller adding many messages in one transaction (bulk import) passes its own `counts`, and
    calls `counts.log(tx)` once at the end: the mailbox counters then move once per batch, not once
    per message. `trash` is the trash mailbox's id (None: there is none) when the caller knows it."""
    parsed = prepared.parsed
    documents = prepared.documents or documents_for(parsed)
    if received_at is None:
        received_at = int(time.time())
    msgids = [clean(m) for m in linked_message_ids(parsed.message_id, parsed.in_reply_to, parsed.references)]
    assignment = assign_thread(tx, msgids, clean(parsed.subject or ""))
    subject = clean(base_subject(parsed.subject or ""))
    sender = clean(_first_address(parsed.from_))
    recipient = clean(_first_address(parsed.to))
    row = EmailRow(
        id=0,
        thread_id=assignment.thread_id,
        blob_id=prepared.blob_id,
        size=parsed.size,
        received_at=received_at,
        sent_at=epoch(parsed.sent_at),
        keywords=keywords,
        has_attachment=parsed.has_attachment,
        subject_sort=subject,
        subject_key=sort_key(subject),
        from_sort=sender,
        from_key=sort_key(sender),
        to_sort=recipient,
        to_key=sort_key(recipient),
        message_id=clean(parsed.message_id[0]) if parsed.message_id else None,
        summary=documents.summary,
        structure=documents.structure,
        mailbox_ids=frozenset(mailbox_ids),
    )
    row.id = tx.emails.insert(row)
    tx.emails.index_text(row.id, documents.search)
    tx.ref_blob(prepared.blob_id, "message/rfc822", parsed.size, +1)

    own_counts = counts is None
    counts = CountChanges() if counts is None else counts
    counts.email_delta(tx, frozenset(), False, row.mailbox_ids, row.unread)
    if trash == LOOK_UP:
        trash = trash_mailbox(tx)
    for merged in assignment.merged_threads:
        counts.refresh_thread(tx, merged, trash)  # now empty: its summaries and thread counts go
        tx.emails.delete_thread(merged)
    counts.refresh_thread(tx, row.thread_id, trash)
    tx.record("Email", to_wire(EMAIL, row.id), "created")
    tx.record("Thread", to_wire(THREAD, row.thread_id), "created" if assignment.created else "updated")
    if own_counts:
        counts.log(tx)
    return row

