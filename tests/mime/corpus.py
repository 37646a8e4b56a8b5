"""Access to the shared real-world message corpus (read in place, never copied).

The corpus lives beside the repository at ``../shared/corpus`` (see its README.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tidings.mime.parse import ParsedMessage, parse_message

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
GOLDEN = Path(__file__).resolve().parent / "golden"
SKIP_REASON = f"message corpus not found at {CORPUS}"

_NOT_MESSAGES = {"README.md", ".gitattributes"}
_MBOX_FROM = re.compile(rb"(?:^|\r?\n)(?=From )")


def corpus_files() -> list[Path]:
    return sorted(
        p for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in _NOT_MESSAGES and not p.name.startswith("LICENSE")
    )


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox file, split on ``From `` lines (each keeps its envelope line)."""
    return [chunk for chunk in _MBOX_FROM.split(data) if chunk.strip()]


def corpus_messages() -> Iterator[tuple[str, bytes]]:
    """``(name, raw)`` for every message; mbox members are named ``path#index``."""
    for path in corpus_files():
        rel = path.relative_to(CORPUS).as_posix()
        data = path.read_bytes()
        if path.name.endswith(".mbox.txt"):
            for i, chunk in enumerate(split_mbox(data)):
                yield f"{rel}#{i}", chunk
        else:
            yield rel, data


def load(name: str) -> bytes:
    rel, _, index = name.partition("#")
    data = (CORPUS / rel).read_bytes()
    return split_mbox(data)[int(index)] if index else data


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit]


def snapshot(msg: ParsedMessage) -> dict[str, Any]:
    """The parse output a golden file records (bodyValues cut to 200 characters)."""
    return {
        "bodyStructure": msg.body_structure,
        "textBody": msg.text_body,
        "htmlBody": msg.html_body,
        "attachments": msg.attachments,
        "hasAttachment": msg.has_attachment,
        "preview": msg.preview,
        "messageId": msg.message_id,
        "inReplyTo": msg.in_reply_to,
        "references": msg.references,
        "subject": msg.subject,
        "sentAt": msg.sent_at,
        "from": msg.from_,
        "sender": msg.sender,
        "to": msg.to,
        "cc": msg.cc,
        "bcc": msg.bcc,
        "replyTo": msg.reply_to,
        "bodyValues": {
            part_id: {"value": _shorten(value.value), "isEncodingProblem": value.is_encoding_problem}
            for part_id, value in msg.body_values.items()
        },
    }


def parse_corpus_message(name: str) -> ParsedMessage:
    return parse_message(load(name))
