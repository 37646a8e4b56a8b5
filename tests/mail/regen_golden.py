"""Regenerate the golden Email/get files in tests/mail/golden/ from the shared corpus.

    .venv/bin/python -m tests.mail.regen_golden          # from the repository root

Each golden file holds the corpus-relative path of its message and the Email/get answer with every
property, every body part property and every body value (fetchAllBodyValues), as a real server gives
it. Volatile values (ids, blob ids, receivedAt) are normalised. Review every change by eye against
RFC 8621 before committing: a golden file that records a bug is a defect. tests/mail/test_golden.py
checks the server against these files.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

GOLDEN = Path(__file__).resolve().parent / "golden"

SELECTED = [
    "mikel-mail/plain_emails/basic_email.eml",
    "mikel-mail/plain_emails/basic_email_lf.eml",
    "mikel-mail/plain_emails/raw_email_reply.eml",
    "mikel-mail/plain_emails/raw_email_with_partially_quoted_subject.eml",
    "mikel-mail/plain_emails/raw_email_with_bad_date.eml",
    "mikel-mail/plain_emails/raw_email_multiple_from.eml",
    "mikel-mail/attachment_emails/attachment_pdf.eml",
    "mikel-mail/attachment_emails/attachment_nonascii_filename.eml",
    "mikel-mail/attachment_emails/attachment_message_rfc822.eml",
    "mikel-mail/attachment_emails/attachment_with_encoded_name.eml",
    "mikel-mail/attachment_emails/attachment_content_location.eml",
    "mikel-mail/error_emails/empty_group_lists.eml",
    "mikel-mail/error_emails/bad_encoded_subject.eml",
    "mikel-mail/error_emails/missing_body.eml",
    "mikel-mail/error_emails/content_transfer_encoding_x_uuencode.eml",
    "mikel-mail/multi_charset/japanese.eml",
    "mikel-mail/rfc2822/example01.eml",
    "mikel-mail/rfc2822/example13.eml",
    "mikel-mail/rfc6532/utf8_headers.eml",
    "mikel-mail/mime_emails/raw_email_with_nested_attachment.eml",
    "mikel-mail/multipart_report_emails/report_422.eml",
    "mimekit/messages/multipart-related-mhtml.txt",
    "mimekit/messages/empty-multipart.txt",
    "mimekit/messages/epilogue.txt",
    "mimekit/messages/multipart-digest.txt",
    "mimekit/messages/delivery-status.txt",
    "mimekit/mbox/simple.mbox.txt#1",
    "mailgun-flanker/missing-boundaries.eml",
    "mailgun-flanker/no-ctype.eml",
    "mailgun-flanker/bilingual-simple.eml",
    "mailgun-flanker/russian-attachment-yahoo.eml",
    "apache-james/server/protocols/jmap-rfc-8621/src/test/resources/fullMessage.eml",
    "apache-james/server/protocols/jmap-rfc-8621/src/test/resources/calendar.eml",
]
RECEIVED_AT = "2020-01-01T00:00:00Z"
MAX_BODY_VALUE_BYTES = 3000


def golden_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label) + ".json"


def normalise(value: Any) -> Any:
    """Replace the values that depend on the server's numbering (ids, blob ids) by placeholders."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("id", "threadId") and isinstance(item, str):
                out[key] = f"<{key}>"
            elif key == "blobId" and isinstance(item, str):
                out[key] = "<blobId>"
            elif key == "mailboxIds" and isinstance(item, dict):
                out[key] = {"<inbox>": True}
            else:
                out[key] = normalise(item)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def compute(client: Any, labels: list[str]) -> dict[str, dict[str, Any]]:
    """{label: golden document} for the given corpus labels, through a running server."""
    from .mailtools import ALL_BODY_PROPERTIES, ALL_PROPERTIES, corpus_message, roles, upload

    inbox = roles(client)["inbox"]
    emails = {str(n): {"blobId": upload(client, corpus_message(label)), "mailboxIds": {inbox: True},
                       "receivedAt": RECEIVED_AT, "keywords": {"$seen": True}}
              for n, label in enumerate(labels)}
    created = client.ok("Email/import", {"emails": emails})["created"]
    ids = [created[str(n)]["id"] for n in range(len(labels))]
    listed = client.ok("Email/get", {"ids": ids, "properties": ALL_PROPERTIES, "bodyProperties": ALL_BODY_PROPERTIES,
                                     "fetchAllBodyValues": True, "maxBodyValueBytes": MAX_BODY_VALUE_BYTES})["list"]
    by_id = {e["id"]: e for e in listed}
    return {label: {"source": label, "email": normalise(by_id[email_id])} for label, email_id in zip(labels, ids,
                                                                                                     strict=True)}


def dump(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    from .conftest import fast_tidings, start

    with tempfile.TemporaryDirectory() as tmp:
        instance = fast_tidings(Path(tmp) / "data")
        live = start(instance)
        client = live.client("alice", "secret")
        try:
            documents = compute(client, SELECTED)
        finally:
            client.close()
            live.stop()
            instance.close()
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.glob("*.json"):
        old.unlink()
    for label, document in documents.items():
        (GOLDEN / golden_name(label)).write_bytes(dump(document))
    print(f"wrote {len(documents)} golden files to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
